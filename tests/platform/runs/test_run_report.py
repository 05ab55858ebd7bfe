"""The run report: report.html beside the executed notebooks, and `medallion report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medallion.platform.cli import app
from medallion.platform.runs.report import REPORT_FILE, RunNotFound, find_report, render_report
from tests.platform.runs.conftest import CRM_TOKEN, PARAM_SECRET, RecordedRun
from tests.support.html_pages import cells


def report_of(recorded_run: RecordedRun) -> Path:
    return recorded_run.recorder.reports[recorded_run.result.run_id]


def test_the_report_lands_beside_the_executed_notebooks(recorded_run: RecordedRun) -> None:
    assert report_of(recorded_run) == recorded_run.result.run_dir / REPORT_FILE


def test_one_row_per_task_with_state_attempts_rows_and_dq(recorded_run: RecordedRun) -> None:
    rows = cells(report_of(recorded_run).read_text(encoding="utf-8"), "tasks").rows
    assert [row[:4] + row[5:10] for row in rows] == [
        ["task", "kind", "state", "attempts", "rows in", "rows written", "rows quarantined",
         "DQ checks", "DQ pass rate"],
        ["load", "notebook", "SUCCESS", "1", "10", "7", "2", "1", "85.00%"],
        ["flaky", "notebook", "SUCCESS", "2", "", "", "", "", ""],
        ["leaks", "notebook", "FAILED", "1", "", "", "", "", ""],
        ["after_leak", "notebook", "UPSTREAM_FAILED", "0", "", "", "", "", ""],
    ]


def test_each_task_links_its_notebooks_rendered_as_html(recorded_run: RecordedRun) -> None:
    run_dir = recorded_run.result.run_dir
    links = cells(report_of(recorded_run).read_text(encoding="utf-8"), "tasks").hrefs
    assert links == ["load.html", "flaky.html", "flaky.attempt-1.html", "leaks.html"]
    rendered = (run_dir / "load.html").read_text(encoding="utf-8")
    assert rendered.startswith("<!DOCTYPE html>")
    assert "jp-Notebook" in rendered  # nbconvert's lab template


def test_the_dq_table_names_every_expectation(recorded_run: RecordedRun) -> None:
    rows = cells(report_of(recorded_run).read_text(encoding="utf-8"), "dq").rows
    assert rows == [
        ["dataset", "layer", "task", "expectation", "action", "passed", "failed", "pass rate"],
        ["silver.orders", "silver", "load", "order_id_not_null", "quarantine", "8", "2",
         "80.00%"],
        ["silver.orders", "silver", "load", "amount_positive", "drop", "9", "1", "90.00%"],
    ]


def test_the_run_table_names_the_mlflow_run(recorded_run: RecordedRun) -> None:
    rows = dict((row[0], row[1]) for row in
                cells(report_of(recorded_run).read_text(encoding="utf-8"), "run").rows)
    assert rows["MLflow run id"] == recorded_run.recorder.mlflow_runs[recorded_run.result.run_id]
    assert rows["run id"] == recorded_run.result.run_id
    assert rows["tasks"] == "1 FAILED, 2 SUCCESS, 1 UPSTREAM_FAILED"


def test_no_secret_in_the_report_or_the_rendered_notebooks(recorded_run: RecordedRun) -> None:
    pages = sorted(recorded_run.result.run_dir.glob("*.html"))
    texts = {path.name: path.read_text(encoding="utf-8") for path in pages}
    assert {name: (CRM_TOKEN in text, PARAM_SECRET in text) for name, text in texts.items()} == {
        name: (False, False) for name in
        ("flaky.attempt-1.html", "flaky.html", "leaks.html", "load.html", REPORT_FILE)
    }


def _summary(tasks: list[dict[str, object]]) -> dict[str, object]:
    return {
        "job": "j", "job_name": "j", "run_id": "20261201T000000Z-abc123", "state": "SUCCESS",
        "run_date": "2026-12-01", "target": "local", "started_at": "2026-12-01T00:00:00+00:00",
        "duration_seconds": 3.0, "code_version": "abc", "failures": [], "tasks": tasks,
        "totals": {"tasks_by_state": {"SUCCESS": len(tasks)}, "rows_written": 0,
                   "rows_quarantined": 0, "cost_usd": None},
    }


def _task(key: str, seconds: float, state: str = "SUCCESS") -> dict[str, object]:
    return {"task_key": key, "kind": "notebook", "state": state, "attempts": 1,
            "duration_seconds": seconds, "rows": {}, "dq": []}


def test_the_duration_chart_has_one_bar_per_task_scaled_to_the_longest() -> None:
    page = render_report(_summary([_task("a", 2.0), _task("b", 1.0, "FAILED")]), links={},
                         mlflow_run_id=None, lineage_svg=None)
    bars = re.findall(r'<rect class="bar" x="\d+" y="\d+" width="([\d.]+)" height="\d+" '
                      r'fill="(#[0-9a-f]+)">', page)
    assert bars == [("420.0", "#2e7d32"), ("210.0", "#c62828")]


def test_values_are_escaped() -> None:
    page = render_report(_summary([_task("<script>x</script>", 1.0)]), links={},
                         mlflow_run_id=None, lineage_svg=None)
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


def _run(runs_root: Path, job: str, run_id: str, *, report: bool = True,
         started_at: str | None = None) -> Path:
    folder = runs_root / job / run_id
    folder.mkdir(parents=True)
    record = {"run_id": run_id, **({"started_at": started_at} if started_at else {})}
    (folder / "run.json").write_text(json.dumps(record))
    if report:
        (folder / REPORT_FILE).write_text("<html></html>")
    return folder


def test_find_report_by_run_id_and_latest_across_jobs(tmp_path: Path) -> None:
    first = _run(tmp_path, "b_job", "20261201T000000Z-aaaaaa")
    latest = _run(tmp_path, "a_job", "20261202T000000Z-bbbbbb")
    assert find_report(tmp_path, "20261201T000000Z-aaaaaa") == first / REPORT_FILE
    assert find_report(tmp_path, "latest") == latest / REPORT_FILE


def test_latest_of_runs_started_in_one_second_is_the_one_started_last(tmp_path: Path) -> None:
    _run(tmp_path, "job", "20261201T000000Z-ffffff", started_at="2026-12-01T00:00:00.100000+00:00")
    last = _run(tmp_path, "job", "20261201T000000Z-000000",
                started_at="2026-12-01T00:00:00.900000+00:00")
    _run(tmp_path, "job", "20261130T235959Z-ffffff", started_at="2026-11-30T23:59:59.999999+00:00")

    assert find_report(tmp_path, "latest") == last / REPORT_FILE


def test_find_report_names_what_is_missing(tmp_path: Path) -> None:
    _run(tmp_path, "job", "20261201T000000Z-aaaaaa", report=False)
    with pytest.raises(RunNotFound, match=r"no run 'nope' under .*latest: "
                                          r"20261201T000000Z-aaaaaa\), or 'latest'"):
        find_report(tmp_path, "nope")
    with pytest.raises(RunNotFound, match=r"has no report\.html"):
        find_report(tmp_path, "latest")


def test_the_report_command_prints_the_path(tmp_path: Path) -> None:
    folder = _run(tmp_path, "job", "20261201T000000Z-aaaaaa")
    printed = CliRunner().invoke(app, ["report", "latest", "--runs-root", str(tmp_path)])
    assert (printed.exit_code, printed.output.strip()) == (0, str(folder / REPORT_FILE))
    missing = CliRunner().invoke(app, ["report", "nope", "--runs-root", str(tmp_path)])
    assert missing.exit_code == 2  # as every command whose input names nothing it knows
