"""The local bundle runner: a bundle's jobs run with the Databricks Jobs service's semantics."""

from medallion.platform.jobs.engine import JobRunResult, RunOptions, run_job
from medallion.platform.jobs.model import JobSpec, TaskSpec

__all__ = ["JobRunResult", "JobSpec", "RunOptions", "TaskSpec", "run_job"]
