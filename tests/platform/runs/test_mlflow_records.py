"""The job run in MLflow: one parent run, a nested run per task, params, metrics, artifacts."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from medallion.lakehouse.storage import StorageRoot
from medallion.platform.runs.tracking import default_tracking_uri
from tests.platform.runs.conftest import CRM_TOKEN, PARAM_SECRET, RecordedRun

TASKS = ("load", "flaky", "leaks", "after_leak")


def _runs(recorded_run: RecordedRun) -> tuple[MlflowClient, Run, dict[str, Run]]:
    client = MlflowClient(tracking_uri=default_tracking_uri(StorageRoot(recorded_run.storage_root)))
    experiment = client.get_experiment_by_name("records_job")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    children = {run.data.tags["medallion.task_key"]: run for run in runs
                if "mlflow.parentRunId" in run.data.tags}
    return client, parents[0], children


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    return sorted(info.path for info in client.list_artifacts(run_id, path))


def test_tracking_uri_is_the_storage_roots_sqlite_database(recorded_run: RecordedRun) -> None:
    database = recorded_run.storage_root / "_system" / "mlflow" / "mlflow.db"
    assert default_tracking_uri(StorageRoot(recorded_run.storage_root)) == f"sqlite:///{database}"
    assert database.is_file()


def test_one_parent_run_and_one_nested_run_per_task(recorded_run: RecordedRun) -> None:
    _client, parent, children = _runs(recorded_run)
    assert recorded_run.recorder.mlflow_runs == {recorded_run.result.run_id: parent.info.run_id}
    assert sorted(children) == sorted(TASKS)
    assert {key: (run.data.tags["mlflow.parentRunId"], run.info.run_name, run.info.status)
            for key, run in children.items()} == {
        "load": (parent.info.run_id, "load", "FINISHED"),
        "flaky": (parent.info.run_id, "flaky", "FINISHED"),
        "leaks": (parent.info.run_id, "leaks", "FAILED"),
        "after_leak": (parent.info.run_id, "after_leak", "FAILED"),
    }
    assert parent.info.status == "FAILED"


def test_parent_params(recorded_run: RecordedRun) -> None:
    _client, parent, _children = _runs(recorded_run)
    summary = recorded_run.summary
    assert parent.data.params == {
        "job": "records_job", "run_id": recorded_run.result.run_id, "target": "local",
        "run_date": "2026-11-20", "code_version": summary["code_version"],
        "cost_model": "cpu_seconds",
        "parameter.storage_root": str(recorded_run.storage_root),
        "parameter.run_date": "2026-11-20", "parameter.crm_token": "[REDACTED]",
    }


def test_parent_metrics_are_the_totals(recorded_run: RecordedRun) -> None:
    _client, parent, _children = _runs(recorded_run)
    totals = recorded_run.summary["totals"]
    assert parent.data.metrics == {
        "tasks": 4, "duration_seconds": totals["duration_seconds"],
        "task_cpu_seconds": totals["task_cpu_seconds"], "cpu_seconds": totals["cpu_seconds"],
        "cost_usd": totals["cost_usd"], "rows_landed": 0, "rows_in": 10, "rows_written": 7,
        "rows_quarantined": 2, "rows_dropped": 1, "dq_checks": 1, "dq_passed_records": 17,
        "dq_failed_records": 3, "dq_expectations_failed": 2,
        "tasks_failed": 1, "tasks_success": 2, "tasks_upstream_failed": 1,
    }


def test_task_metrics_include_dq_per_expectation(recorded_run: RecordedRun) -> None:
    _client, _parent, children = _runs(recorded_run)
    load = next(t for t in recorded_run.summary["tasks"] if t["task_key"] == "load")
    assert children["load"].data.metrics == {
        "attempts": 1, "duration_seconds": load["duration_seconds"],
        "cpu_seconds": load["cpu_seconds"], "cost_usd": load["cost_usd"],
        "rows_in": 10, "rows_written": 7, "rows_quarantined": 2, "rows_dropped": 1,
        "dq.silver.orders.rows_in": 10, "dq.silver.orders.rows_valid": 7,
        "dq.silver.orders.rows_quarantined": 2, "dq.silver.orders.rows_dropped": 1,
        "dq.silver.orders.order_id_not_null.passed_records": 8,
        "dq.silver.orders.order_id_not_null.failed_records": 2,
        "dq.silver.orders.amount_positive.passed_records": 9,
        "dq.silver.orders.amount_positive.failed_records": 1,
    }
    assert children["flaky"].data.metrics["attempts"] == 2


def test_artifacts(recorded_run: RecordedRun) -> None:
    client, parent, children = _runs(recorded_run)
    assert _artifacts(client, parent.info.run_id) == ["dq_report.json", "run_summary.json"]
    assert {key: _artifacts(client, run.info.run_id, "notebooks")
            for key, run in children.items()} == {
        "load": ["notebooks/load.ipynb"],
        "flaky": ["notebooks/flaky.attempt-1.ipynb", "notebooks/flaky.ipynb"],
        "leaks": ["notebooks/leaks.ipynb"],
        "after_leak": [],
    }


def _texts(run: Run) -> list[str]:
    return [*run.data.params.values(), *run.data.tags.values()]


def test_no_secret_in_params_tags_or_artifacts(recorded_run: RecordedRun,
                                               tmp_path: Path) -> None:
    client, parent, children = _runs(recorded_run)
    texts = [text for run in [parent, *children.values()] for text in _texts(run)]
    assert [text for text in texts if CRM_TOKEN in text or PARAM_SECRET in text] == []
    assert children["leaks"].data.tags["medallion.error"].endswith(
        "RuntimeError: CRM refused token [REDACTED]")
    downloaded = Path(client.download_artifacts(children["leaks"].info.run_id, "notebooks",
                                                str(tmp_path)))
    notebook = (downloaded / "leaks.ipynb").read_text(encoding="utf-8")
    assert (CRM_TOKEN in notebook, PARAM_SECRET in notebook) == (False, False)


def test_an_mlflow_failure_is_a_warning_and_the_summary_still_lands(
        recorded_run: RecordedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/mlflow.db")
    storage_root = tmp_path / "lake"
    result = recorded_run.result
    again: Any = dataclasses.replace(
        result, parameters={**result.parameters, "storage_root": str(storage_root)}
    )
    recorder = dataclasses.replace(recorded_run.recorder, summaries={}, mlflow_runs={},
                                   report=False)  # the shared run's report stays as it was
    with caplog.at_level(logging.WARNING, logger="medallion.platform.runs.recorder"):
        recorder.job_finished(again)
    assert recorder.mlflow_runs == {}
    assert recorder.summaries[result.run_id].is_file()
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        f"run {result.run_id} of job 'records_job'"
    ]
    assert "not recorded in MLflow" in caplog.records[0].getMessage()


# A fresh process: a started run has MLflow's client imported and its tracking database created
# before the run ends (the record then finds them ready); a process that records nothing never
# imports MLflow nor creates a database.
PREPARED = """
import sqlite3, sys, threading
from pathlib import Path
from medallion.platform.jobs.model import parse_job
from medallion.platform.runs.recorder import RunRecorder

MODULES = ("mlflow.tracking", "mlflow.store.tracking.sqlalchemy_store")
recorder = RunRecorder(target="local", mlflow=sys.argv[1] == "on", report=False)
job = parse_job("job", {"tasks": [{"task_key": "t", "notebook_task": {"notebook_path": "nb"}}]})
recorder.job_started(job, "run-1", Path("."), {"storage_root": sys.argv[2]})
for thread in threading.enumerate():
    if thread.name == "mlflow-import":
        thread.join(timeout=120)
print(",".join(module for module in MODULES if module in sys.modules))
database = Path(sys.argv[2], "_system", "mlflow", "mlflow.db")
if database.exists():
    with sqlite3.connect(database) as connection:
        print(",".join(sorted(name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE name IN ('experiments', 'alembic_version')"))))
"""


@pytest.mark.parametrize(("mlflow", "prepared"), [
    ("on", ["mlflow.tracking,mlflow.store.tracking.sqlalchemy_store",
            "alembic_version,experiments"]),
    ("off", [""]),
])
def test_a_started_run_gets_mlflow_ready_while_its_tasks_run(
    mlflow: str, prepared: list[str], tmp_path: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-c", PREPARED, mlflow, str(tmp_path / "root")],
                            capture_output=True, text=True, timeout=300, check=False, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == prepared
