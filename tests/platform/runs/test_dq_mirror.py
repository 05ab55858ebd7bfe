"""Checks logged to the DQ event log inside a job run are mirrored for the run summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medallion.lakehouse.quality.event_log import DQ_EVENT_LOG, append_dq_event
from medallion.lakehouse.quality.metrics import DQMetrics, ExpectationMetrics
from medallion.lakehouse.quality.run_mirror import read_dq_checks
from medallion.lakehouse.runtime import CONTEXT_ENV, TaskContext

METRICS = DQMetrics(
    "silver.fact_orders", rows_in=5, rows_valid=4, rows_quarantined=1,
    expectations=(ExpectationMetrics("valid_amount", "quarantine", "amount >= 0", 4, 1),),
)


class _Spark:
    def createDataFrame(self, rows: Any, schema: Any = None) -> Any:  # noqa: N802
        return rows


class _Lakehouse:
    """Takes the event log's append without Spark."""

    def __init__(self) -> None:
        self.spark = _Spark()
        self.writes: list[tuple[str, str]] = []

    def write(self, rows: list[Any], table: str, mode: str, **options: Any) -> None:
        self.writes.append((table, mode))


def test_a_check_inside_a_job_run_is_mirrored(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    context = TaskContext("build_analytics", "run-1", "silver_orders", tmp_path)
    monkeypatch.setenv(CONTEXT_ENV, context.to_json())
    lakehouse = _Lakehouse()
    append_dq_event(lakehouse, METRICS, dataset="silver.fact_orders", layer="silver",  # type: ignore[arg-type]
                    run_id="run-1", job="build_analytics", task="silver_orders")
    assert lakehouse.writes == [(DQ_EVENT_LOG, "append")]
    assert read_dq_checks(tmp_path, "silver_orders") == [{
        "dataset": "silver.fact_orders", "layer": "silver", "rows_in": 5, "rows_valid": 4,
        "rows_quarantined": 1, "dropped_records": 0, "dropped_by_rule": {},
        "expectations": [{"name": "valid_amount", "action": "quarantine",
                          "expression": "amount >= 0", "passed_records": 4,
                          "failed_records": 1}],
    }]


def test_outside_a_job_run_nothing_is_mirrored(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONTEXT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    append_dq_event(_Lakehouse(), METRICS, dataset="silver.fact_orders", layer="silver",  # type: ignore[arg-type]
                    run_id="manual", job="manual", task="manual")
    assert list(tmp_path.rglob("*")) == []


def test_a_failed_event_log_write_mirrors_nothing(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONTEXT_ENV, TaskContext("j", "r", "t", tmp_path).to_json())
    lakehouse = _Lakehouse()

    def refuse(rows: list[Any], table: str, mode: str, **options: Any) -> None:
        raise OSError("disk full")

    lakehouse.write = refuse  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        append_dq_event(lakehouse, METRICS, dataset="silver.fact_orders", layer="silver",  # type: ignore[arg-type]
                        run_id="r", job="j", task="t")
    assert json.dumps(read_dq_checks(tmp_path, "t")) == "[]"
