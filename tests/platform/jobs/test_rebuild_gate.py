"""The real bundle's rebuild gate, through the runner.

``ingest_daily_sources`` builds a date only when one of its loads is new, and ``build_analytics``
records the loads it read only when nothing before its last task failed. The file checks, the
condition tasks and the record task are the bundle's own (notebooks included); every other task
(the extractors, the layers, the publishes) is a condition task that succeeds, or fails.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from medallion.lakehouse.raw.build_record import (
    build_record_path,
    find_build_inputs,
    read_build_record,
    write_build_record,
)
from medallion.lakehouse.raw.landing import land_records, raw_zone
from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.bundle import load_bundle
from medallion.platform.jobs import JobRunResult, RunOptions, run_job
from medallion.platform.jobs.model import Condition, ConditionOp, JobSpec, parse_job

RUN_DATE = date(2026, 11, 25)
SOURCES = ("snowflake/orders", "kafka/orders", "redshift/behavior", "crm/accounts", "fx_rates")
SUCCEEDS = Condition(ConditionOp.EQUAL_TO, "1", "1")
FAILS = Condition(ConditionOp.GREATER_THAN, "down", "0")  # not numbers: the task fails
INGEST_KEPT = {"plan_load_dates", "full_reload", "reset_incremental_positions",
               "check_landed_files", "has_new_rows", "build_analytics"}
BUILD_KEPT = {"check_raw_files", "has_raw_files", "glue_requested", "register_glue",
              "record_build"}


def stubbed(job: JobSpec, kept: set[str], failing: frozenset[str] = frozenset()) -> JobSpec:
    """``job`` with every task outside ``kept`` a condition task that succeeds (or fails)."""
    tasks = tuple(
        task if task.task_key in kept else replace(
            task, notebook_path=None, base_parameters={}, for_each=None, run_job=None,
            condition=FAILS if task.task_key in failing else SUCCEEDS,
        )
        for task in job.tasks
    )
    return replace(job, tasks=tasks)


def bundle_jobs(failing: frozenset[str] = frozenset()) -> dict[str, JobSpec]:
    raw = load_bundle(repo_root()).jobs
    return {
        "ingest_daily_sources": stubbed(
            parse_job("ingest_daily_sources", raw["ingest_daily_sources"]), INGEST_KEPT),
        "build_analytics": stubbed(
            parse_job("build_analytics", raw["build_analytics"]), BUILD_KEPT, failing),
    }


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    """A lakehouse with one complete load per source for RUN_DATE."""
    root = tmp_path / "lakehouse"
    for spec in SOURCES:
        source, _, entity = spec.partition("/")
        raw = raw_zone(StorageRoot(root))
        land_records(raw, source, entity or None, RUN_DATE, [{"id": f"{source}_1"}])
    return root


def run(job_key: str, storage_root: Path, failing: frozenset[str] = frozenset()) -> JobRunResult:
    """Run a stubbed job of the bundle for RUN_DATE, cold compute (no task here uses Spark)."""
    jobs = bundle_jobs(failing)
    options = RunOptions(runs_root=storage_root.parent / "runs", compute="cold", kernel_pool=1,
                         sleep=lambda _: None, jobs=jobs)
    parameters = {"run_date": RUN_DATE.isoformat(), "storage_root": str(storage_root)}
    return run_job(jobs[job_key], parameters, options)


def states(result: JobRunResult, *keys: str) -> tuple[str, ...]:
    return tuple(result.tasks[key].state for key in keys)


def test_a_complete_build_records_the_loads_its_file_check_found(storage_root: Path) -> None:
    result = run("build_analytics", storage_root)

    assert states(result, "publish_snowflake", "publish_redshift", "register_glue",
                  "record_build") == ("SUCCESS", "SUCCESS", "EXCLUDED", "SUCCESS")
    assert result.state == "SUCCESS"
    assert read_build_record(StorageRoot(storage_root), RUN_DATE) == find_build_inputs(
        StorageRoot(storage_root), SOURCES, RUN_DATE)


def test_a_build_with_a_failed_publish_records_nothing(storage_root: Path) -> None:
    result = run("build_analytics", storage_root, failing=frozenset({"publish_snowflake"}))

    assert states(result, "publish_snowflake", "publish_redshift", "record_build") == (
        "FAILED", "SUCCESS", "UPSTREAM_FAILED")
    assert result.state == "FAILED"
    assert not build_record_path(StorageRoot(storage_root), RUN_DATE).exists()


def test_ingest_builds_a_date_never_built(storage_root: Path) -> None:
    result = run("ingest_daily_sources", storage_root)

    assert result.tasks["has_new_rows"].condition_result == "true"
    assert states(result, "check_landed_files", "build_analytics") == ("SUCCESS", "SUCCESS")
    # by the build's last task
    assert build_record_path(StorageRoot(storage_root), RUN_DATE).exists()


def test_ingest_skips_the_build_when_no_load_changed_since_the_last_build(
    storage_root: Path,
) -> None:
    root = StorageRoot(storage_root)
    write_build_record(root, find_build_inputs(root, SOURCES, RUN_DATE),
                       run_id="earlier")

    result = run("ingest_daily_sources", storage_root)

    assert result.tasks["has_new_rows"].condition_result == "false"
    assert states(result, "check_landed_files", "build_analytics") == ("SUCCESS", "EXCLUDED")
    assert result.state == "SUCCESS"
