"""The run report: one HTML page a person opens after a job run, beside its executed notebooks.

``<run_dir>/report.html`` shows one run of one job:

- **the run**: job, run id, state, run date, start, duration, target, code version, estimated
  cost and its MLflow run id;
- **its tasks**: state, attempts, duration, rows in / written / quarantined, DQ checks with
  their pass rate, and a link to what the task left: its executed notebook rendered as HTML
  (``<stem>.html`` beside the ``.ipynb``), its iterations' notebooks, or the report of the job
  run it started; a chart of the tasks' durations coloured by state; the errors of those that
  failed;
- **data quality**: per dataset checked, its rows and each expectation's passed / failed records
  (the run's ``dq_report.json``);
- **lineage**: what the run's steps read and wrote, drawn from their COMPLETE OpenLineage events.

The page is self-contained (inline CSS and SVG): it opens offline, from a CI artifact or from
MLflow. Notebooks are rendered by nbconvert's HTML exporter (the ``lab`` template), one exporter per
process. Everything shown comes from the redacted run summary and from notebooks whose outputs are
already free of secrets.
"""

from __future__ import annotations

import html
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medallion.lakehouse.errors import MedallionError
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.jobs.engine import run_records

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
LATEST = "latest"
STATE_COLOURS = {"SUCCESS": "#2e7d32", "FAILED": "#c62828", "TIMEDOUT": "#c62828",
                 "UPSTREAM_FAILED": "#9e9e9e", "EXCLUDED": "#9e9e9e", "CANCELED": "#9e9e9e"}
OTHER_STATE_COLOUR = "#f9a825"
BAR_HEIGHT, BAR_GAP, LABEL_WIDTH, BAR_SPACE, CHART_MARGIN = 18, 6, 230, 420, 10
_EXPORTER_LOCK = threading.Lock()
_exporter: Any = None

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; color: #1a1a1a; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f5f7; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; } .muted { color: #666; } pre { white-space: pre-wrap; margin: 0; }
.figure { overflow-x: auto; border: 1px solid #d0d7de; padding: .5em; }
"""


class RunNotFound(MedallionError):
    """No run record matches the run id asked for (or no run has been recorded yet)."""


def write_run_report(summary: Mapping[str, Any], run_dir: Path, *,
                     mlflow_run_id: str | None = None, storage_root: StorageRoot | None = None,
                     task_outputs: Mapping[str, Sequence[str]] | None = None) -> Path:
    """Render the run's notebooks and write ``report.html`` in ``run_dir``; its path.

    ``task_outputs``: per task, what it left (notebooks, folders of iteration notebooks, child
    run folders), as the runner recorded them; ``storage_root``: where the lineage events are.
    """
    links: dict[str, list[tuple[str, str]]] = {}
    for task_key, outputs in (task_outputs or {}).items():
        links[task_key] = [link for output in outputs
                           for link in _task_links(Path(output), run_dir)]
    lineage_svg = _lineage_svg(storage_root, summary["run_id"]) if storage_root else None
    page = render_report(summary, links=links, mlflow_run_id=mlflow_run_id,
                         lineage_svg=lineage_svg)
    path = run_dir / REPORT_FILE
    staged = path.with_suffix(".tmp")
    staged.write_text(page, encoding="utf-8")
    staged.replace(path)
    return path


def prepare_rendering() -> None:
    """Import nbconvert and build its exporter in a background thread (about 2 s, once per
    process), so that a runner does it while its run's notebooks execute, not after."""
    if _exporter is None:  # built once per process; later runs find it ready
        threading.Thread(target=_html_exporter, name="report-exporter", daemon=True).start()


def render_notebook(notebook: Path) -> Path:
    """``notebook`` rendered as HTML beside it (``<stem>.html``); that file's path."""
    import nbformat

    exporter = _html_exporter()
    with _EXPORTER_LOCK:
        node = nbformat.read(notebook, as_version=4)  # type: ignore[no-untyped-call]
        body, _ = exporter.from_notebook_node(node)
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def _html_exporter() -> Any:
    """The process's one nbconvert HTML exporter (lab template), its templates compiled."""
    global _exporter
    with _EXPORTER_LOCK:
        if _exporter is None:
            import nbformat
            from nbconvert import HTMLExporter

            exporter = HTMLExporter(template_name="lab")  # type: ignore[no-untyped-call]
            # A first notebook compiles the templates.
            exporter.from_notebook_node(nbformat.v4.new_notebook())  # type: ignore[no-untyped-call]
            _exporter = exporter
        return _exporter


def find_report(runs_root: Path, run_id: str) -> Path:
    """The report of run ``run_id`` (of any job) under ``runs_root``; ``latest``: the run that
    started last."""
    records = run_records(runs_root, "*/*/run.json")
    if run_id == LATEST:
        found = records[-1:]
    else:
        found = [path for path in records if path.parent.name == run_id]
    if not found:
        known = ", ".join(path.parent.name for path in records[-5:]) or "none yet"
        raise RunNotFound(f"no run {run_id!r} under {runs_root}: expected a run id as "
                          f"`medallion jobs status` lists them (latest: {known}), or 'latest'")
    report = found[-1].parent / REPORT_FILE
    if not report.exists():
        raise RunNotFound(f"run {found[-1].parent.name} has no {REPORT_FILE} in "
                          f"{found[-1].parent}: it has not finished, or it ran before reports")
    return report


def render_report(summary: Mapping[str, Any], *, links: Mapping[str, Sequence[tuple[str, str]]],
                  mlflow_run_id: str | None, lineage_svg: str | None) -> str:
    """The report page of a run summary (``run_summary.schema.json``)."""
    title = f"{summary['job']} run {summary['run_id']}: {summary['state']}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(summary['job_name'])}: <span class=\"state\" "
        f"style=\"color:{_colour(summary['state'])}\">{_e(summary['state'])}</span></h1>",
        _run_table(summary, mlflow_run_id),
        "<h2>Tasks</h2>", _tasks_table(summary["tasks"], links),
        _duration_chart(summary["tasks"]),
        _failures(summary["failures"]),
        "<h2>Data quality</h2>", _dq_tables(summary["tasks"]),
        "<h2>Lineage</h2>",
        (f'<div class="figure" id="lineage">{_inline_svg(lineage_svg)}</div>' if lineage_svg
         else '<p class="muted">No lineage events for this run (its steps wrote no table).</p>'),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _run_table(summary: Mapping[str, Any], mlflow_run_id: str | None) -> str:
    totals = summary["totals"]
    cost = totals.get("cost_usd")
    rows = [
        ("run id", summary["run_id"]), ("run date", summary["run_date"]),
        ("target", summary["target"]), ("started", summary["started_at"]),
        ("duration", f"{summary['duration_seconds']:.1f} s"),
        ("tasks", ", ".join(f"{n} {s}" for s, n in totals["tasks_by_state"].items())),
        ("rows written", totals["rows_written"]), ("rows quarantined", totals["rows_quarantined"]),
        ("estimated cost", "unpriced" if cost is None else f"${cost:.4f}"),
        ("code version", summary["code_version"]),
        ("MLflow run id", mlflow_run_id or "not recorded"),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table id="run">{body}</table>'


def _tasks_table(tasks: Sequence[Mapping[str, Any]],
                 links: Mapping[str, Sequence[tuple[str, str]]]) -> str:
    head = ("task", "kind", "state", "attempts", "seconds", "rows in", "rows written",
            "rows quarantined", "DQ checks", "DQ pass rate", "output")
    rows = []
    for task in tasks:
        counts = task["rows"]
        passed = sum(r["passed_records"] for c in task["dq"] for r in c["expectations"])
        failed = sum(r["failed_records"] for c in task["dq"] for r in c["expectations"])
        rate = f"{passed / (passed + failed):.2%}" if passed + failed else ""
        output = "<br>".join(f'<a href="{_e(href)}">{_e(text)}</a>'
                             for text, href in links.get(task["task_key"], ()))
        rows.append(
            f"<tr><td>{_e(task['task_key'])}</td><td>{_e(task['kind'] or '')}</td>"
            f'<td class="state" style="color:{_colour(task["state"])}">{_e(task["state"])}</td>'
            f'<td class="n">{task["attempts"]}</td>'
            f'<td class="n">{task["duration_seconds"]:.1f}</td>'
            + "".join(f'<td class="n">{_e(counts.get(key, ""))}</td>'
                      for key in ("rows_in", "rows_written", "rows_quarantined"))
            + f'<td class="n">{len(task["dq"]) or ""}</td><td class="n">{rate}</td>'
            f"<td>{output}</td></tr>"
        )
    header = "".join(f"<th>{_e(name)}</th>" for name in head)
    return (f'<table id="tasks"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}'
            "</tbody></table>")


def _duration_chart(tasks: Sequence[Mapping[str, Any]]) -> str:
    """Horizontal bars, one per task, as long as its duration and coloured by its state."""
    if not tasks:
        return ""
    longest = max(max(task["duration_seconds"] for task in tasks), 0.1)
    height = CHART_MARGIN * 2 + len(tasks) * (BAR_HEIGHT + BAR_GAP)
    width = LABEL_WIDTH + BAR_SPACE + 80
    bars = []
    for index, task in enumerate(tasks):
        y = CHART_MARGIN + index * (BAR_HEIGHT + BAR_GAP)
        length = max(task["duration_seconds"] / longest * BAR_SPACE, 1.0)
        bars.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 13}" text-anchor="end">'
            f'{_e(task["task_key"])}</text>'
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" '
            f'height="{BAR_HEIGHT}" fill="{_colour(task["state"])}">'
            f'<title>{_e(task["task_key"])}: {task["state"]}, '
            f'{task["duration_seconds"]:.1f} s</title></rect>'
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + 13}">'
            f'{task["duration_seconds"]:.1f} s</text>'
        )
    return (f'<div class="figure" id="durations"><svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{width}" height="{height}" font-size="12" font-family="sans-serif">'
            f"<title>seconds per task</title>{''.join(bars)}</svg></div>")


def _failures(failures: Sequence[Mapping[str, Any]]) -> str:
    if not failures:
        return ""
    rows = "".join(f"<tr><td>{_e(f['task_key'])}</td><td>{_e(f['state'])}</td>"
                   f"<td><pre>{_e(f['error'] or '')}</pre></td></tr>" for f in failures)
    return (f'<h2>Failures</h2><table id="failures"><thead><tr><th>task</th><th>state</th>'
            f"<th>error</th></tr></thead><tbody>{rows}</tbody></table>")


def _dq_tables(tasks: Sequence[Mapping[str, Any]]) -> str:
    checks = [(task["task_key"], check) for task in tasks for check in task["dq"]]
    if not checks:
        return '<p class="muted">No DQ checks ran in this run.</p>'
    rows = []
    for task_key, check in checks:
        for rule in check["expectations"]:
            total = rule["passed_records"] + rule["failed_records"]
            rate = f"{rule['passed_records'] / total:.2%}" if total else ""
            rows.append(
                f"<tr><td>{_e(check['dataset'])}</td><td>{_e(check['layer'])}</td>"
                f"<td>{_e(task_key)}</td><td>{_e(rule['name'])}</td><td>{_e(rule['action'])}</td>"
                f'<td class="n">{rule["passed_records"]}</td>'
                f'<td class="n">{rule["failed_records"]}</td><td class="n">{rate}</td></tr>'
            )
    head = "".join(f"<th>{name}</th>" for name in (
        "dataset", "layer", "task", "expectation", "action", "passed", "failed", "pass rate"))
    return (f'<table id="dq"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            "</table>")


def _task_links(output: Path, run_dir: Path) -> Iterable[tuple[str, str]]:
    """(text, relative href) for what a task left: a notebook (rendered now), a folder of
    iteration notebooks, or a child run's folder (its report)."""
    if output.suffix == ".ipynb":
        notebooks = [output, *sorted(output.parent.glob(f"{output.stem}.attempt-*.ipynb"))]
    elif (output / REPORT_FILE).exists() or (output / "run.json").exists():
        yield f"run {output.name}", os.path.relpath(output / REPORT_FILE, run_dir)
        return
    elif output.is_dir():
        notebooks = sorted(output.glob("*.ipynb"))
    else:
        return
    for notebook in notebooks:
        if not notebook.exists():
            continue
        try:
            rendered = render_notebook(notebook)
        except Exception as error:  # a notebook that cannot be rendered is linked as it is
            log.warning("report: %s not rendered as HTML: %s: %s", notebook,
                        type(error).__name__, error)
            rendered = notebook
        yield rendered.stem, os.path.relpath(rendered, run_dir)


def _lineage_svg(storage_root: StorageRoot, run_id: str) -> str | None:
    try:
        from medallion.lakehouse.lineage.graph import run_lineage
        from medallion.lakehouse.lineage.picture import render_svg

        graph = run_lineage(storage_root, run_id)
        return render_svg(graph) if graph.nodes else None
    except Exception as error:  # the report stands without its picture
        log.warning("report: no lineage picture for run %s: %s: %s", run_id,
                    type(error).__name__, error)
        return None


def _inline_svg(svg: str) -> str:
    """An SVG document's ``<svg>`` element, to put inside HTML (no XML declaration)."""
    return svg[svg.index("<svg"):]


def _colour(state: str) -> str:
    return STATE_COLOURS.get(state, OTHER_STATE_COLOUR)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))

