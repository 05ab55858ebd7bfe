"""The run summary: one JSON file per job run with counts, durations, DQ results, failures and cost.

Written to ``<storage_root>/_runs/dt=<run_date>/<job>/<run_id>/run_summary.json``: the folder
of the day the run processed (its ``run_date`` parameter, else the day it started), then one
folder per run, so several runs of a day never overwrite each other and each run's other records
(``dq_report.json``) sit beside its summary. Its shape is
``config/schemas/run_summary.schema.json``.

Nothing secret is written: parameters whose name says they are secret are ``[REDACTED]``, and
every value of the secrets provider is masked wherever it appears (errors included).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from medallion.lakehouse.credentials import local_secret_values, redact, stored_local_secrets
from medallion.lakehouse.quality.run_mirror import read_dq_checks
from medallion.lakehouse.runtime import read_task_values
from medallion.lakehouse.storage import StorageRoot, storage_root_of
from medallion.platform.jobs.engine import FAILURES, JobRunResult, TaskRun
from medallion.platform.jobs.model import JobSpec
from medallion.platform.jobs.notifications import (
    MIN_SECRET_LENGTH,
    is_secret_name,
    redact_parameters,
)
from medallion.platform.runs.cost import CostModel

SCHEMA_VERSION = 1
RUNS_DIR = "_runs"
SUMMARY_FILE = "run_summary.json"
DQ_REPORT_FILE = "dq_report.json"
# Task values that count rows, as the pipeline steps' notebooks set them (``StepResult``).
ROW_KEYS = ("rows_landed", "rows_in", "rows_written", "rows_quarantined", "rows_dropped")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def code_version(bundle_root: Path) -> str:
    """The bundle root's git commit, else ``medallion-lakehouse==<package version>``."""
    try:
        found = subprocess.run(
            ["git", "-C", str(bundle_root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        found = None
    if found is not None and found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    try:
        return f"medallion-lakehouse=={metadata.version('medallion-lakehouse')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def run_date_of(result: JobRunResult) -> str:
    """The business date the run processed (``run_date``), else the day it started (UTC)."""
    given = result.parameters.get("run_date", "")
    return given if _DATE.match(given) else result.started_at[:10]


def summary_dir(storage_root: StorageRoot, result: JobRunResult) -> Path:
    """``<storage_root>/_runs/dt=<run_date>/<job>/<run_id>``: this run's records."""
    return (storage_root / RUNS_DIR / f"dt={run_date_of(result)}" / result.job_key
            / result.run_id)


def _rows(values: Mapping[str, Any]) -> dict[str, int]:
    rows: dict[str, int] = {}
    for key in ROW_KEYS:
        value = values.get(key)
        if isinstance(value, Mapping):  # rows dropped by rule
            value = sum(v for v in value.values() if isinstance(v, int))
        if isinstance(value, int) and not isinstance(value, bool):
            rows[key] = value
    return rows


def _dq_checks(result: JobRunResult, job: JobSpec | None, task_key: str) -> list[dict[str, Any]]:
    keys = [task_key]
    spec = next((t for t in job.tasks if t.task_key == task_key), None) if job else None
    if spec is not None and spec.for_each is not None:  # iterations run as the nested task
        keys.append(spec.for_each.task.task_key)
    checks = []
    for key in keys:
        for check in read_dq_checks(result.run_dir, key):
            checks.append({
                "dataset": check["dataset"],
                "layer": check["layer"],
                "rows_in": check["rows_in"],
                "rows_valid": check["rows_valid"],
                "rows_quarantined": check["rows_quarantined"],
                "rows_dropped": check["dropped_records"],
                "expectations": [
                    {name: rule[name] for name in
                     ("name", "action", "passed_records", "failed_records")}
                    for rule in check["expectations"]
                ],
            })
    return checks


def _task_summary(result: JobRunResult, job: JobSpec | None, run: TaskRun,
                  cost_model: CostModel) -> dict[str, Any]:
    spec = next((t for t in job.tasks if t.task_key == run.task_key), None) if job else None
    return {
        "task_key": run.task_key,
        "kind": spec.kind if spec is not None else None,
        "state": run.state,
        "attempts": run.attempts,
        "duration_seconds": run.duration_seconds,
        "cpu_seconds": run.cpu_seconds,
        "cost_usd": cost_model.estimate(duration_seconds=run.duration_seconds,
                                        cpu_seconds=run.cpu_seconds),
        "rows": _rows(read_task_values(result.run_dir, run.task_key)),
        "dq": _dq_checks(result, job, run.task_key),
        "error": run.error,
        "error_class": run.error_class,
        "reason": run.reason,
    }


def _totals(result: JobRunResult, tasks: list[dict[str, Any]],
            cost_model: CostModel) -> dict[str, Any]:
    by_state: dict[str, int] = {}
    for task in tasks:
        by_state[task["state"]] = by_state.get(task["state"], 0) + 1
    task_cpu = round(sum(task["cpu_seconds"] for task in tasks), 3)
    cpu = round(task_cpu + (result.compute_cpu_seconds or 0.0), 3)
    expectations = [rule for task in tasks for check in task["dq"]
                    for rule in check["expectations"]]
    return {
        "tasks": len(tasks),
        "tasks_by_state": dict(sorted(by_state.items())),
        "duration_seconds": result.duration_seconds,
        "task_cpu_seconds": task_cpu,
        "compute_cpu_seconds": result.compute_cpu_seconds,
        "cpu_seconds": cpu,
        "cost_usd": cost_model.estimate(duration_seconds=result.duration_seconds,
                                        cpu_seconds=cpu),
        **{key: sum(task["rows"].get(key, 0) for task in tasks) for key in ROW_KEYS},
        "dq_checks": sum(len(task["dq"]) for task in tasks),
        "dq_passed_records": sum(rule["passed_records"] for rule in expectations),
        "dq_failed_records": sum(rule["failed_records"] for rule in expectations),
        "dq_expectations_failed": sum(1 for rule in expectations if rule["failed_records"]),
    }


def secret_values(parameters: Mapping[str, str]) -> list[str]:
    """What must never be written: secret-named parameters' values and the provider's values."""
    named = [value for name, value in parameters.items()
             if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH]
    return local_secret_values([*named, *stored_local_secrets(storage_root_of(parameters))])


def redact_record(record: Any, values: list[str]) -> Any:
    """``record`` (JSON-serialisable) with every one of ``values`` masked wherever it appears."""
    text = json.dumps(record)
    masked = redact(text, [json.dumps(value)[1:-1] for value in values])
    return record if masked == text else json.loads(masked)


def build_run_summary(result: JobRunResult, *, job: JobSpec | None, target: str | None,
                      code_version: str, cost_model: CostModel) -> dict[str, Any]:
    """The run summary of a finished run (see ``config/schemas/run_summary.schema.json``)."""
    tasks = [_task_summary(result, job, run, cost_model) for run in result.tasks.values()]
    summary = {
        "schema_version": SCHEMA_VERSION,
        "job": result.job_key,
        "job_name": job.name if job is not None else result.job_key,
        "run_id": result.run_id,
        "target": target,
        "run_date": run_date_of(result),
        "code_version": code_version,
        "state": result.state,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "duration_seconds": result.duration_seconds,
        "parameters": redact_parameters(result.parameters),
        "cost_model": cost_model.as_dict(),
        "tasks": tasks,
        "totals": _totals(result, tasks, cost_model),
        "failures": [
            {"task_key": task["task_key"], "state": task["state"],
             "error": task["error"] or task["reason"]}
            for task in tasks if task["state"] in FAILURES
        ],
        "health_breaches": list(result.health_breaches),
        "run_dir": str(result.run_dir),
    }
    redacted: dict[str, Any] = redact_record(summary, secret_values(result.parameters))
    return redacted


def build_dq_report(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Per dataset checked in the run: rows checked and quarantined, and each expectation."""
    datasets: dict[str, dict[str, Any]] = {}
    for task in summary["tasks"]:
        for check in task["dq"]:
            entry = datasets.setdefault(check["dataset"], {
                "dataset": check["dataset"], "layer": check["layer"], "tasks": [],
                "checks": 0, "rows_checked": 0, "rows_valid": 0, "rows_quarantined": 0,
                "rows_dropped": 0, "expectations": {},
            })
            if task["task_key"] not in entry["tasks"]:
                entry["tasks"].append(task["task_key"])
            entry["checks"] += 1
            entry["rows_checked"] += check["rows_in"]
            entry["rows_valid"] += check["rows_valid"]
            entry["rows_quarantined"] += check["rows_quarantined"]
            entry["rows_dropped"] += check["rows_dropped"]
            for rule in check["expectations"]:
                counts = entry["expectations"].setdefault(rule["name"], {
                    "name": rule["name"], "action": rule["action"],
                    "passed_records": 0, "failed_records": 0,
                })
                counts["passed_records"] += rule["passed_records"]
                counts["failed_records"] += rule["failed_records"]
    report = []
    for entry in datasets.values():
        rules = list(entry.pop("expectations").values())
        entry["expectations"] = rules
        entry["failed_expectations"] = [rule["name"] for rule in rules if rule["failed_records"]]
        report.append(entry)
    return {"job": summary["job"], "run_id": summary["run_id"], "run_date": summary["run_date"],
            "datasets": report}


def _write_json(path: Path, record: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    staged.replace(path)
    return path


def write_run_summary(summary: Mapping[str, Any], storage_root: StorageRoot,
                      result: JobRunResult) -> Path:
    """Write the summary and its DQ report under the storage root; the summary's path."""
    folder = summary_dir(storage_root, result)
    _write_json(folder / DQ_REPORT_FILE, build_dq_report(summary))
    return _write_json(folder / SUMMARY_FILE, summary)
