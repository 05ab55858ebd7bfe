"""A job run in MLflow: one run per job run (experiment = the job), a nested run per task.

The parent run holds the parameters (job, target, run_date, code version, the job's parameters,
secret ones redacted), the totals as metrics and, as artifacts, the run summary, the DQ report and
``run.json``. Each task's nested run (tag ``mlflow.parentRunId``) holds its state, attempts,
duration, CPU seconds, cost, row counts and DQ counts per expectation
(``dq.<dataset>.<rule>.passed_records`` / ``.failed_records``), and its executed notebooks.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set, else
``sqlite:///<storage_root>/_system/mlflow/mlflow.db`` with artifacts under
``<storage_root>/_system/mlflow/artifacts/<job>``. MLflow is imported only here: it takes seconds
to import, so a runner starts importing it in the background when a run starts
(``prepare_tracking``), and a process that records no run never does.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from medallion.lakehouse.storage import StorageRoot

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
MLFLOW_DIR = Path("_system") / "mlflow"
PARENT_RUN_TAG = "mlflow.parentRunId"
_MAX_TAG_LENGTH = 5000
_MAX_METRICS_PER_BATCH = 1000  # MLflow's LogBatch limits
_MAX_PARAMS_PER_BATCH = 100
_TERMINAL_STATUS = {
    "SUCCESS": "FINISHED", "SUCCESS_WITH_FAILURES": "FINISHED", "FAILED": "FAILED",
    "TIMEDOUT": "FAILED", "UPSTREAM_FAILED": "FAILED", "EXCLUDED": "KILLED", "CANCELED": "KILLED",
}
ROW_METRICS = ("rows_landed", "rows_in", "rows_written", "rows_quarantined", "rows_dropped")
# One SQLite file, written by the runs of this process one at a time (a parent and its children).
_LOCK = threading.Lock()
_PREPARED_LOCK = threading.Lock()
# What prepare_tracking did: each root whose database it opened, None for the imports alone.
_prepared: set[StorageRoot | None] = set()


def default_tracking_uri(storage_root: StorageRoot) -> str:
    """``sqlite:///<storage_root>/_system/mlflow/mlflow.db``."""
    return f"sqlite:///{storage_root / MLFLOW_DIR / 'mlflow.db'}"


def tracking_uri(storage_root: StorageRoot) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the storage root's SQLite database."""
    return os.environ.get(TRACKING_URI_ENV) or default_tracking_uri(storage_root)


def prepare_tracking(storage_root: StorageRoot | None = None) -> None:
    """Get MLflow ready in a background thread, so a runner does it while its run's notebooks
    execute, not after: import MLflow's client (~3 s of a runner's ~7 s outside its tasks) and,
    for a SQLite URI, its database store; given the run's ``storage_root`` and no
    ``MLFLOW_TRACKING_URI``, also open the root's database, which creates it and runs MLflow's
    schema migrations the first time (1.5-5 s). Each is done once per process; ``record_run``
    waits for an open in progress. A step that fails here fails again, and is handled, where the
    run is recorded."""
    root = storage_root if not os.environ.get(TRACKING_URI_ENV) else None
    with _PREPARED_LOCK:
        if root in _prepared:
            return
        _prepared.add(root)
    threading.Thread(target=_prepare, args=(root,), name="mlflow-import", daemon=True).start()


def _prepare(storage_root: StorageRoot | None) -> None:
    modules = ["mlflow.tracking"]
    if (os.environ.get(TRACKING_URI_ENV) or "sqlite:").startswith("sqlite:"):
        modules.append("mlflow.store.tracking.sqlalchemy_store")
    with contextlib.suppress(Exception):  # record_run imports them again and reports a failure
        for module in modules:
            importlib.import_module(module)
        if storage_root is not None:
            _open_database(storage_root)


def _open_database(storage_root: StorageRoot) -> None:
    """Open the storage root's database: MLflow keeps its store for the process's later
    clients of the same URI."""
    from mlflow.tracking import MlflowClient

    _quiet_mlflow_logs()
    (storage_root / MLFLOW_DIR).mkdir(parents=True, exist_ok=True)
    with _LOCK:
        MlflowClient(tracking_uri=default_tracking_uri(storage_root)).search_experiments(
            max_results=1)


def _millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _quiet_mlflow_logs() -> None:
    # Creating the database runs MLflow's schema migrations, each an INFO line: not news for a run.
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking.fluent"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except MlflowException:  # created meanwhile by another process
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def _log(client: Any, run_id: str, *, params: Mapping[str, Any], metrics: Mapping[str, float],
         tags: Mapping[str, str], timestamp: int) -> None:
    from mlflow.entities import Metric, Param, RunTag

    param_list = [Param(key, str(value)) for key, value in params.items()]
    metric_list = [Metric(key, float(value), timestamp, 0) for key, value in metrics.items()]
    tag_list = [RunTag(key, value[:_MAX_TAG_LENGTH]) for key, value in tags.items()]
    for chunk in _chunks(param_list, _MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(metric_list, _MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=chunk)
    for chunk in _chunks(tag_list, _MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, tags=chunk)


def task_metrics(task: Mapping[str, Any]) -> dict[str, float]:
    """A task's metrics: timing, cost, row counts, and DQ counts per dataset and expectation."""
    metrics: dict[str, float] = {
        "attempts": task["attempts"],
        "duration_seconds": task["duration_seconds"],
        "cpu_seconds": task["cpu_seconds"],
        "cost_usd": task["cost_usd"],
        **{key: task["rows"][key] for key in ROW_METRICS if key in task["rows"]},
    }
    for check in task["dq"]:
        prefix = f"dq.{check['dataset']}"
        for name in ("rows_in", "rows_valid", "rows_quarantined", "rows_dropped"):
            metrics[f"{prefix}.{name}"] = metrics.get(f"{prefix}.{name}", 0) + check[name]
        for rule in check["expectations"]:
            for name in ("passed_records", "failed_records"):
                key = f"{prefix}.{rule['name']}.{name}"
                metrics[key] = metrics.get(key, 0) + rule[name]
    return metrics


def run_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The job run's metrics: its totals that are numbers."""
    totals = summary["totals"]
    metrics = {key: value for key, value in totals.items()
               if isinstance(value, int | float) and not isinstance(value, bool)}
    for state, count in totals["tasks_by_state"].items():
        metrics[f"tasks_{state.lower()}"] = count
    return metrics


def _notebooks(run_dir: Path, task_key: str) -> list[Path]:
    """The task's executed notebooks: final, failed attempts, and loop iterations."""
    found = [run_dir / f"{task_key}.ipynb", *sorted(run_dir.glob(f"{task_key}.attempt-*.ipynb"))]
    found += sorted((run_dir / task_key).glob("iteration-*.ipynb"))
    return [path for path in found if path.is_file()]


def record_run(summary: Mapping[str, Any], *, storage_root: StorageRoot, run_dir: Path,
               artifacts: Sequence[Path]) -> str:
    """Record a finished job run (its summary) in MLflow; the parent run's MLflow id."""
    from mlflow.tracking import MlflowClient

    _quiet_mlflow_logs()
    uri = tracking_uri(storage_root)
    artifact_location = None
    if uri.startswith("sqlite:"):
        (storage_root / MLFLOW_DIR).mkdir(parents=True, exist_ok=True)
        artifact_location = (storage_root / MLFLOW_DIR / "artifacts"
                             / summary["job"]).resolve().as_uri()
    with _LOCK:
        client = MlflowClient(tracking_uri=uri)
        experiment_id = _experiment_id(client, summary["job"], artifact_location)
        started, ended = _millis(summary["started_at"]), _millis(summary["ended_at"])
        common_tags = {"medallion.job": summary["job"], "medallion.run_id": summary["run_id"],
                       "medallion.target": str(summary["target"])}
        parent = client.create_run(experiment_id, start_time=started,
                                   run_name=f"{summary['job']} {summary['run_id']}",
                                   tags={**common_tags,
                                         "medallion.state": summary["state"]})
        parent_id = parent.info.run_id
        _log(client, parent_id, timestamp=ended, tags={}, metrics=run_metrics(summary), params={
            "job": summary["job"], "run_id": summary["run_id"], "target": summary["target"],
            "run_date": summary["run_date"], "code_version": summary["code_version"],
            "cost_model": summary["cost_model"]["kind"],
            **{f"parameter.{name}": value for name, value in summary["parameters"].items()},
        })
        for path in artifacts:
            client.log_artifact(parent_id, str(path))
        for task in summary["tasks"]:
            tags = {**common_tags, PARENT_RUN_TAG: parent_id,
                    "medallion.task_key": task["task_key"],
                    "medallion.state": task["state"]}
            if task["error"] or task["reason"]:
                tags["medallion.error"] = task["error"] or task["reason"]
            child = client.create_run(experiment_id, start_time=started,
                                      run_name=task["task_key"], tags=tags)
            _log(client, child.info.run_id, timestamp=ended, tags={}, metrics=task_metrics(task),
                 params={"job": summary["job"], "run_id": summary["run_id"],
                         "task_key": task["task_key"], "kind": str(task["kind"])})
            for notebook in _notebooks(run_dir, task["task_key"]):
                client.log_artifact(child.info.run_id, str(notebook), artifact_path="notebooks")
            client.set_terminated(child.info.run_id, status=_TERMINAL_STATUS[task["state"]],
                                  end_time=ended)
        client.set_terminated(parent_id, status=_TERMINAL_STATUS[summary["state"]],
                              end_time=ended)
    return str(parent_id)
