"""The run observer that records every finished job run: its summary file and its MLflow run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medallion.lakehouse.storage import StorageRoot
from medallion.platform.jobs.engine import JobRunResult, RunObserver
from medallion.platform.jobs.model import JobSpec
from medallion.platform.runs.cost import UNPRICED, CostModel
from medallion.platform.runs.summary import (
    DQ_REPORT_FILE,
    build_run_summary,
    code_version,
    write_run_summary,
)

if TYPE_CHECKING:
    from medallion.platform.bundle.model import Bundle

log = logging.getLogger(__name__)
COST_MODEL_VARIABLE = "cost_model"


@dataclass
class RunRecorder(RunObserver):
    """Writes each run's summary under its storage root and records it in MLflow.

    The storage root is the run's ``storage_root`` parameter, else ``storage_root`` given here (the
    bundle's variable). A record that cannot be written is a logged warning: it never fails a run.
    """

    target: str | None
    cost_model: CostModel = UNPRICED
    code_version: str = "unknown"
    storage_root: StorageRoot | None = None
    mlflow: bool = True
    report: bool = True  # report.html beside the executed notebooks
    summaries: dict[str, Path] = field(default_factory=dict)  # by run id, for callers and tests
    mlflow_runs: dict[str, str] = field(default_factory=dict)  # job run id -> MLflow run id
    reports: dict[str, Path] = field(default_factory=dict)  # by run id: its report.html
    _jobs: dict[str, JobSpec] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_bundle(cls, bundle: Bundle, *, mlflow: bool = True) -> RunRecorder:
        """A recorder for ``bundle``'s target: its cost model, storage root and git commit."""
        raw = bundle.variables.get(COST_MODEL_VARIABLE)
        storage_root = bundle.variables.get("storage_root")
        return cls(
            target=bundle.target,
            cost_model=UNPRICED if raw is None else CostModel.parse(raw),
            code_version=code_version(bundle.root),
            storage_root=StorageRoot(str(storage_root)) if storage_root else None,
            mlflow=mlflow,
        )

    def job_started(self, job: JobSpec, run_id: str, run_dir: Path,
                    parameters: Mapping[str, str]) -> None:
        """Remember the job, for its tasks' kinds and loops; get MLflow (its client and the run's
        tracking database) and the report's renderer ready."""
        with self._lock:
            self._jobs[run_id] = job
        if self.mlflow:
            from medallion.platform.runs.tracking import prepare_tracking

            prepare_tracking(self._storage_root(parameters))
        if self.report:
            from medallion.platform.runs.report import prepare_rendering

            prepare_rendering()

    def job_finished(self, result: JobRunResult) -> None:
        """Write the run's summary, then record it in MLflow; warn on any failure."""
        with self._lock:
            job = self._jobs.pop(result.run_id, None)
        storage_root = self._storage_root(result.parameters)
        if storage_root is None:
            log.warning("run %s of job %r: no storage_root, so no run summary or MLflow record",
                        result.run_id, result.job_key)
            return
        try:
            summary = build_run_summary(result, job=job, target=self.target,
                                        code_version=self.code_version,
                                        cost_model=self.cost_model)
            path = write_run_summary(summary, storage_root, result)
        except Exception as error:  # a record is never worth a failed run
            log.warning("run %s of job %r: run summary not written: %s: %s", result.run_id,
                        result.job_key, type(error).__name__, error)
            return
        self.summaries[result.run_id] = path
        if self.mlflow:
            self._record_in_mlflow(summary, storage_root, result, path)
        if self.report:
            self._write_report(summary, storage_root, result)

    def _storage_root(self, parameters: Mapping[str, str]) -> StorageRoot | None:
        """The run's ``storage_root`` parameter, else the recorder's."""
        value = parameters.get("storage_root") or self.storage_root
        return StorageRoot(value) if value else None

    def _write_report(self, summary: dict[str, Any], storage_root: StorageRoot,
                      result: JobRunResult) -> None:
        from medallion.platform.runs.report import write_run_report

        outputs = {key: run.iteration_outputs or ([run.notebook_output] if run.notebook_output
                                                  else [])
                   for key, run in result.tasks.items()}
        try:
            self.reports[result.run_id] = write_run_report(
                summary, result.run_dir, mlflow_run_id=self.mlflow_runs.get(result.run_id),
                storage_root=storage_root, task_outputs=outputs,
            )
        except Exception as error:  # a report is never worth a failed run
            log.warning("run %s of job %r: report not written: %s: %s", result.run_id,
                        result.job_key, type(error).__name__, error)

    def _record_in_mlflow(self, summary: dict[str, Any], storage_root: StorageRoot,
                          result: JobRunResult, path: Path) -> None:
        from medallion.platform.runs.tracking import record_run

        try:
            self.mlflow_runs[result.run_id] = record_run(
                summary, storage_root=storage_root, run_dir=result.run_dir,
                artifacts=[path, path.parent / DQ_REPORT_FILE],
            )
        except Exception as error:  # MLflow down or misconfigured: the run stands as it ended
            log.warning("run %s of job %r: not recorded in MLflow: %s: %s", result.run_id,
                        result.job_key, type(error).__name__, error)
