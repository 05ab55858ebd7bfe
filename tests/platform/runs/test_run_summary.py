"""The run summary of a job run: where it lands, its shape, and what it says."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.platform.runs.conftest import (
    CRM_TOKEN,
    FIXTURE_BUNDLE,
    PARAM_SECRET,
    SCHEMA_PATH,
    RecordedRun,
)

LOAD_DQ = [{
    "dataset": "silver.orders", "layer": "silver", "rows_in": 10, "rows_valid": 7,
    "rows_quarantined": 2, "rows_dropped": 1,
    "expectations": [
        {"name": "order_id_not_null", "action": "quarantine", "passed_records": 8,
         "failed_records": 2},
        {"name": "amount_positive", "action": "drop", "passed_records": 9, "failed_records": 1},
    ],
}]


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _task(summary: dict[str, Any], key: str) -> dict[str, Any]:
    return next(task for task in summary["tasks"] if task["task_key"] == key)


def test_summary_lands_in_the_run_date_folder_one_folder_per_run(
        recorded_run: RecordedRun) -> None:
    run_id = recorded_run.result.run_id
    expected = (recorded_run.storage_root / "_runs" / "dt=2026-11-20" / "records_job" / run_id
                / "run_summary.json")
    assert recorded_run.summary_path == expected
    assert sorted(p.name for p in expected.parent.iterdir()) == ["dq_report.json",
                                                                 "run_summary.json"]


def test_summary_validates_against_its_schema(recorded_run: RecordedRun) -> None:
    _validator().validate(recorded_run.summary)


@pytest.mark.parametrize(("path", "value"), [
    (("tasks", 0, "attempts"), -1),
    (("state",), "DONE"),
    (("totals", "dq_failed_records"), "3"),
    (("tasks", 0, "dq", 0, "expectations", 0, "passed_records"), None),
])
def test_a_hand_broken_summary_fails_validation(recorded_run: RecordedRun,
                                                path: tuple[Any, ...], value: Any) -> None:
    broken = copy.deepcopy(recorded_run.summary)
    holder = broken
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    errors = list(_validator().iter_errors(broken))
    assert [list(error.absolute_path) for error in errors] == [list(path)]


def test_a_summary_without_totals_fails_validation(recorded_run: RecordedRun) -> None:
    broken = copy.deepcopy(recorded_run.summary)
    del broken["totals"]
    with pytest.raises(jsonschema.ValidationError, match="'totals' is a required property"):
        _validator().validate(broken)


def test_run_fields(recorded_run: RecordedRun) -> None:
    summary = recorded_run.summary
    commit = subprocess.run(["git", "-C", str(FIXTURE_BUNDLE), "rev-parse", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert {key: summary[key] for key in
            ("schema_version", "job", "run_id", "target", "run_date", "code_version", "state",
             "parameters", "cost_model", "health_breaches")} == {
        "schema_version": 1, "job": "records_job", "run_id": recorded_run.result.run_id,
        "target": "local", "run_date": "2026-11-20", "code_version": commit, "state": "FAILED",
        "parameters": {"storage_root": str(recorded_run.storage_root),
                       "run_date": "2026-11-20", "crm_token": "[REDACTED]"},
        "cost_model": {"kind": "cpu_seconds", "usd_per_cpu_hour": 36.0},
        "health_breaches": [],
    }


def test_task_states_and_attempts(recorded_run: RecordedRun) -> None:
    assert [(t["task_key"], t["kind"], t["state"], t["attempts"])
            for t in recorded_run.summary["tasks"]] == [
        ("load", "notebook", "SUCCESS", 1),
        ("flaky", "notebook", "SUCCESS", 2),
        ("leaks", "notebook", "FAILED", 1),
        ("after_leak", "notebook", "UPSTREAM_FAILED", 0),
    ]


def test_row_counts_and_dq_results_per_task(recorded_run: RecordedRun) -> None:
    summary = recorded_run.summary
    assert {t["task_key"]: (t["rows"], t["dq"]) for t in summary["tasks"]} == {
        "load": ({"rows_in": 10, "rows_written": 7, "rows_quarantined": 2, "rows_dropped": 1},
                 LOAD_DQ),
        "flaky": ({}, []),
        "leaks": ({}, []),
        "after_leak": ({}, []),
    }


def test_failures_are_listed_with_redacted_errors(recorded_run: RecordedRun) -> None:
    leak_notebook = FIXTURE_BUNDLE.resolve() / "notebooks" / "leak.ipynb"
    assert recorded_run.summary["failures"] == [
        {"task_key": "leaks", "state": "FAILED",
         "error": f"notebook {leak_notebook}, cell 3 (execution count 3): RuntimeError: CRM "
                  "refused token [REDACTED]"},
        {"task_key": "after_leak", "state": "UPSTREAM_FAILED",
         "error": "run_if ALL_SUCCESS not met by its dependencies (leaks=FAILED)"},
    ]


def test_totals(recorded_run: RecordedRun) -> None:
    totals = recorded_run.summary["totals"]
    tasks = recorded_run.summary["tasks"]
    task_cpu = round(sum(t["cpu_seconds"] for t in tasks), 3)
    assert totals == {
        "tasks": 4,
        "tasks_by_state": {"FAILED": 1, "SUCCESS": 2, "UPSTREAM_FAILED": 1},
        "duration_seconds": recorded_run.result.duration_seconds,
        "task_cpu_seconds": task_cpu,
        "compute_cpu_seconds": None,  # cold compute: no shared server
        "cpu_seconds": task_cpu,
        "cost_usd": round(task_cpu / 3600 * 36.0, 6),
        "rows_landed": 0, "rows_in": 10, "rows_written": 7, "rows_quarantined": 2,
        "rows_dropped": 1,
        "dq_checks": 1, "dq_passed_records": 17, "dq_failed_records": 3,
        "dq_expectations_failed": 2,
    }


def test_tasks_that_ran_used_cpu_and_skipped_ones_none(recorded_run: RecordedRun) -> None:
    cpu = {t["task_key"]: t["cpu_seconds"] for t in recorded_run.summary["tasks"]}
    assert {key: seconds > 0 for key, seconds in cpu.items()} == {
        "load": True, "flaky": True, "leaks": True, "after_leak": False,
    }


def test_dq_report_beside_the_summary(recorded_run: RecordedRun) -> None:
    report = json.loads((recorded_run.summary_path.parent / "dq_report.json").read_text())
    assert report == {
        "job": "records_job", "run_id": recorded_run.result.run_id, "run_date": "2026-11-20",
        "datasets": [{
            "dataset": "silver.orders", "layer": "silver", "tasks": ["load"], "checks": 1,
            "rows_checked": 10, "rows_valid": 7, "rows_quarantined": 2, "rows_dropped": 1,
            "expectations": LOAD_DQ[0]["expectations"],
            "failed_expectations": ["order_id_not_null", "amount_positive"],
        }],
    }


def test_no_secret_in_any_record_file(recorded_run: RecordedRun) -> None:
    records = [recorded_run.summary_path, recorded_run.summary_path.parent / "dq_report.json"]
    texts = {path.name: path.read_text(encoding="utf-8") for path in records}
    assert {name: (CRM_TOKEN in text, PARAM_SECRET in text) for name, text in texts.items()} == {
        "run_summary.json": (False, False), "dq_report.json": (False, False),
    }


def test_executed_notebooks_mask_secret_parameters(recorded_run: RecordedRun) -> None:
    notebooks = sorted(Path(recorded_run.result.run_dir).glob("*.ipynb"))
    texts = {path.name: path.read_text(encoding="utf-8") for path in notebooks}
    assert {name: ("[REDACTED]" in text, PARAM_SECRET in text, CRM_TOKEN in text)
            for name, text in texts.items()} == {
        name: (True, False, False) for name in
        ("flaky.attempt-1.ipynb", "flaky.ipynb", "leaks.ipynb", "load.ipynb")
    }
