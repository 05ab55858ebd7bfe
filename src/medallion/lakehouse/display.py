"""What a notebook shows after its step: small HTML tables and charts a person reads.

Notebooks stay thin: they call ``show(result)`` (and ``show_quarantine`` / ``show_gold``) and this
module renders. Every output is HTML or a PNG chart, displayed through IPython's rich display:
Jupyter, papermill's executed notebooks and Databricks notebooks (an IPython kernel) all keep them
as ``text/html`` and ``image/png`` outputs. Outside a notebook nothing is displayed; the rendered
objects are returned either way, so tests can read them. Charts need matplotlib, which the local
platform and every Databricks runtime have (the wheel does not pin it).
"""

from __future__ import annotations

import html
import io
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, cast

from medallion.lakehouse.pipelines import StepResult

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from medallion.lakehouse.pipelines.ingest import IngestResult
    from medallion.lakehouse.quality.breaker import BreakerResult
    from medallion.lakehouse.quality.engine import QuarantineSample
    from medallion.lakehouse.tables import Lakehouse



class Shown(list[Any]):
    """The displayed objects (IPython's HTML and Image), returned for tests to read. As a cell's
    last value it shows nothing more: they are on screen already."""

    def _ipython_display_(self) -> None:
        return None

PREVIEW_ROWS = 10
TOP_ROWS = 10
HISTOGRAM_BINS = 30
HISTOGRAM_LOCAL_ROWS = 100_000  # more values than this are binned in Spark


def show(result: StepResult | IngestResult | BreakerResult) -> Shown:
    """Display a step's outcome: its counts, or each DQ check with a chart of the failures."""
    # An ingest or breaker result's module is loaded if it made one: not imported here (Great
    # Expectations, the source clients) for a notebook that shows something else.
    shown = Shown()
    if isinstance(result, StepResult):
        shown.append(_html(_step_table(result)))
    elif _instance(result, "medallion.lakehouse.pipelines.ingest", "IngestResult"):
        shown.append(_html(_ingest_table(cast("IngestResult", result))))
    elif _instance(result, "medallion.lakehouse.quality.breaker", "BreakerResult"):
        breaker = cast("BreakerResult", result)
        shown.append(_html(_breaker_table(breaker)))
        failures = {f"{c.table}: {c.name}": c.unexpected or 0 for c in breaker.checks
                    if not c.success}
        if failures:
            shown.append(_bar_chart(failures, f"{breaker.layer}: unexpected rows per failed "
                                    "check", "rows"))
    else:
        raise TypeError(f"show: expected a step, ingest or breaker result, got {type(result)}")
    return _display(shown)


def show_quarantine(lakehouse: Lakehouse, table: str, run_date: date | None = None,
                    limit: int = PREVIEW_ROWS, *, quarantined: int | None = None,
                    sample: QuarantineSample | None = None) -> Shown:
    """A sample of a quarantine table's rows (of ``run_date`` when given) with their ``_errors``.

    ``quarantined``: how many rows the step that just ran left in ``run_date``'s partition, when
    the caller knows (its result's ``rows_quarantined``). None are shown as such without reading
    the table: a warm day's bronze task quarantines nothing, and the sample's query (the table's
    Delta state, a filtered scan) cost it 0.3-0.8 s of a 5-7 s task on `make bench`'s small day.
    ``sample``: the rows the step took from what it wrote (its result's ``quarantine_sample``),
    shown instead of a read of the table.
    """
    from pyspark.sql import functions as sf

    from medallion.lakehouse.quality.engine import sample_quarantined

    if quarantined == 0 and run_date is not None:
        none = f"<p><code>{html.escape(table)}</code>: no rows quarantined on {run_date}</p>"
        return _display(Shown([_html(none)]))
    title = f"{table}: a sample of the quarantined rows" + (f" of {run_date}" if run_date else "")
    if sample is not None:
        return _display(Shown([_html(_table(title, sample.columns, sample.rows[:limit]))]))
    if not lakehouse.exists(table):
        none = f"<p><code>{html.escape(table)}</code>: no quarantine table</p>"
        return _display(Shown([_html(none)]))
    rows = lakehouse.read(table)
    if run_date is not None and "_proc_date" in rows.columns:
        rows = rows.where(sf.col("_proc_date") == sf.lit(run_date))
    read = sample_quarantined(rows, limit)
    return _display(Shown([_html(_table(title, read.columns, read.rows))]))


def show_gold(lakehouse: Lakehouse, dataset: str) -> Shown:
    """A gold table's first rows and the charts its spec's ``display`` section names: a line
    chart (``gold.orders_daily``: revenue per day and currency), a histogram and the top rows
    (``gold.fact_customer_360``: lifetime value, the top customers, masked)."""
    from pyspark.sql import functions as sf

    from medallion.lakehouse.quality.spec import spec_for

    frame = lakehouse.read(dataset)
    shown = Shown([_html(_table(f"{dataset}: first {PREVIEW_ROWS} rows", frame.columns,
                                [tuple(r) for r in frame.limit(PREVIEW_ROWS).collect()]))])
    display = spec_for(dataset).display
    if display.line is not None:
        line = display.line
        rows = frame.groupBy(line.x, line.series).agg(sf.sum(line.y)).orderBy(line.x)
        series: dict[str, dict[Any, float]] = {}
        for row in rows.collect():
            series.setdefault(row[line.series], {})[row[line.x]] = float(row[2] or 0)
        shown.append(_line_chart(series, line.title, line.y))
    if display.histogram is not None:
        histogram = display.histogram
        edges, counts = histogram_bins(frame, histogram.column)
        shown.append(_histogram(edges, counts, histogram.title, histogram.unit))
    if display.top is not None:
        top = display.top
        leaders = frame.orderBy(frame[top.by].desc()).limit(TOP_ROWS).select(*top.columns)
        shown.append(_html(_table(top.title, list(top.columns),
                                  [tuple(r) for r in leaders.collect()])))
    return _display(shown)


def histogram_bins(frame: DataFrame, column: str, bins: int = HISTOGRAM_BINS, *,
                   local_rows: int = HISTOGRAM_LOCAL_ROWS) -> tuple[list[float], list[int]]:
    """The column's histogram as ``numpy.histogram`` draws it: ``bins`` equal-width bins from its
    least to its greatest value (0.5 either side of a single value), each holding its left edge
    and the last also its right one; returned as the ``bins + 1`` edges and the count of each.
    Nulls are left out; a column without values has no bins.

    Up to ``local_rows`` values are binned on the driver: one query, the cheapest for a small
    table (1k values: 0.2-0.3 s, against 0.7-0.9 s for the two queries of counting in Spark). A
    larger column is counted in Spark, its range and then its bins, and only the counts reach
    the driver: 2.1 s on 1M values, against 4.0 s to collect them all (a local session).
    """
    import numpy
    from pyspark.sql import functions as sf

    if bins < 1:
        raise ValueError(f"bins={bins}: expected at least 1")
    values = frame.select(sf.col(column).cast("double").alias("value")).where(
        sf.col("value").isNotNull())
    held = values.limit(local_rows + 1).collect()
    if len(held) <= local_rows:
        if not held:
            return [], []
        local_counts, local_edges = numpy.histogram([row[0] for row in held], bins=bins)
        return local_edges.tolist(), local_counts.tolist()
    least, greatest = values.select(sf.min("value"), sf.max("value")).first() or (0.0, 0.0)
    if least == greatest:
        least, greatest = least - 0.5, greatest + 0.5
    width = (greatest - least) / bins
    index = sf.least(sf.floor((sf.col("value") - sf.lit(least)) / sf.lit(width)).cast("int"),
                     sf.lit(bins - 1))
    counted: dict[int, int] = {
        row["bin"]: row["count"] for row in values.groupBy(index.alias("bin")).count().collect()
    }
    edges = [least + width * i for i in range(bins)] + [greatest]
    return edges, [counted.get(i, 0) for i in range(bins)]


def show_tables(lakehouse: Lakehouse, schema: str) -> Shown:
    """The tables of a schema the lakehouse's role may read: rows and columns of each."""
    rows = []
    for table in lakehouse.tables(schema):
        frame = lakehouse.read(table)
        rows.append((table, frame.count(), ", ".join(frame.columns)))
    return _display(Shown([_html(_table(f"the tables of {schema}", ["table", "rows", "columns"],
                                        rows))]))


def show_bars(frame: DataFrame, label: str, value: str, title: str) -> Shown:
    """A small aggregate as a table and a bar chart of ``value`` per ``label``."""
    rows = frame.collect()
    shown = Shown([_html(_table(title, frame.columns, [tuple(row) for row in rows]))])
    bars = {str(row[label]): float(row[value] or 0) for row in rows}
    if bars:
        shown.append(_bar_chart(bars, title, value))
    return _display(shown)


def show_dq_pass_rates(lakehouse: Lakehouse) -> Shown:
    """Each dataset's DQ pass rate per build run (oldest first), from ``ops.dq_event_log``.

    A role that may not read ``ops`` gets one line saying so, not an error: the rest of an
    analyst's notebook still runs.
    """
    from pyspark.sql import functions as sf

    from medallion.lakehouse.errors import AccessDenied
    from medallion.lakehouse.quality.event_log import DQ_EVENT_LOG, EVENT_TYPE

    try:
        events = lakehouse.read(DQ_EVENT_LOG)
    except AccessDenied as denied:
        return _display(Shown([_html(f"<p>DQ pass rates: {html.escape(str(denied))}</p>")]))
    progress = sf.get_json_object("details", "$.flow_progress.metrics.num_output_rows")
    checked = sf.expr(
        "aggregate(from_json(get_json_object(details, '$.flow_progress.data_quality."
        "expectations'), 'array<struct<passed_records:bigint,failed_records:bigint>>'), 0L, "
        "(acc, e) -> greatest(acc, e.passed_records + e.failed_records))"
    )
    per_run = (
        events.where(sf.col("event_type") == EVENT_TYPE)
        .groupBy("run_id", "dataset")
        .agg(sf.min("timestamp").alias("at"), sf.sum(progress.cast("bigint")).alias("passed"),
             sf.sum(checked).alias("checked"))
        .orderBy("at", "dataset")
        .collect()
    )
    runs = sorted({(row["at"], row["run_id"]) for row in per_run})
    order = {run_id: index + 1 for index, (_, run_id) in enumerate(runs)}
    series: dict[str, dict[Any, float]] = {}
    for row in per_run:
        if row["checked"]:
            series.setdefault(row["dataset"], {})[order[row["run_id"]]] = (
                100.0 * row["passed"] / row["checked"])
    table_rows = [(row["run_id"], row["dataset"], row["checked"], row["passed"],
                   f"{row['passed'] / row['checked']:.1%}" if row["checked"] else "")
                  for row in per_run]
    return _display(Shown([
        _line_chart(series, "DQ pass rate per build run (1 = oldest)", "% of rows passing"),
        _html(_table("DQ pass rates per run", ["run", "dataset", "rows checked", "rows passed",
                                               "pass rate"], table_rows)),
    ]))


def show_lineage(lakehouse: Lakehouse, table: str) -> Shown:
    """The table's upstream lineage back to the sources, drawn from the OpenLineage events."""
    from medallion.lakehouse.lineage.graph import read_lineage
    from medallion.lakehouse.lineage.picture import render_svg

    graph, _ = read_lineage(lakehouse.storage_root)
    dataset = graph.find(table)
    svg = render_svg(graph.upstream(dataset), dataset)
    try:
        from IPython.display import SVG
    except ImportError:
        return _display(Shown([svg]))
    return _display(Shown([SVG(data=svg)]))  # type: ignore[no-untyped-call]


def _instance(value: object, module: str, name: str) -> bool:
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(value, getattr(loaded, name))


def _step_table(result: StepResult) -> str:
    rows: list[tuple[Any, ...]] = [
        ("rows in", result.rows_in),
        ("rows written", result.rows_written),
        ("rows quarantined", result.rows_quarantined),
        *((f"rows dropped ({rule})", count) for rule, count in result.rows_dropped.items()),
    ]
    return _table(f"{result.step} → {result.target}", ["", "rows"], rows)


def _ingest_table(result: IngestResult) -> str:
    source = f"{result.source}/{result.entity}" if result.entity else result.source
    rows = [(source, result.load_dt, result.rows, f"{result.seconds:.1f}",
             result.rows_per_second, result.load_dir)]
    return _table(f"{source}: landed {result.load_dt}",
                  ["source", "load date", "rows landed", "seconds", "rows/s", "raw load"], rows)


def _breaker_table(result: BreakerResult) -> str:
    rows = []
    for check in result.checks:
        total = result.rows.get(check.table)
        failed = check.unexpected
        passed = total - failed if total is not None and failed is not None else None
        rate = f"{passed / total:.1%}" if total and passed is not None else ""
        rows.append((check.table, check.name, "fail the job" if check.critical else "warn",
                     "passed" if check.success else "FAILED", passed, failed, rate))
    rows += [(table, rule, "", "checked by its step, not here: a column only the step's input "
              "had", None, None, "") for table, rule in result.not_rechecked]
    verdict = "passed" if result.passed else f"{len(result.critical_failures)} critical failed"
    return _table(f"DQ breaker ({result.layer}): {len(result.checks)} checks, {verdict}",
                  ["table", "expectation", "action", "result", "rows passed", "rows failed",
                   "pass rate"], rows)


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An HTML table with a caption; values escaped, NULL shown as such."""
    def cell(value: Any) -> str:
        return "<i>NULL</i>" if value is None else html.escape(str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return (f'<table class="medallion"><caption style="text-align:left"><b>'
            f"{html.escape(title)}</b></caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; the figure is saved as PNG
    from matplotlib import pyplot as plt

    return plt.subplots(figsize=(8, 3.2), dpi=100)


def _png(figure: Any) -> Any:
    from IPython.display import Image
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return Image(data=buffer.getvalue(), format="png")  # type: ignore[no-untyped-call]


def _bar_chart(values: Mapping[str, float], title: str, unit: str) -> Any:
    figure, axes = _figure()
    labels = list(values)
    axes.barh(labels, [values[label] for label in labels], color="#c0392b")
    axes.invert_yaxis()
    axes.set_title(title)
    axes.set_xlabel(unit)
    return _png(figure)


def _line_chart(series: dict[str, dict[Any, float]], title: str, unit: str) -> Any:
    figure, axes = _figure()
    for name, points in sorted(series.items()):
        days = sorted(points)
        axes.plot(days, [points[d] for d in days], marker="o", label=name)
    axes.set_title(title)
    axes.set_ylabel(unit)
    axes.legend(loc="upper left", fontsize="small", ncol=4)
    figure.autofmt_xdate()
    return _png(figure)


def _histogram(edges: list[float], counts: list[int], title: str, unit: str) -> Any:
    figure, axes = _figure()
    if counts:
        axes.stairs(counts, edges, fill=True, color="#2c7fb8")
    axes.set_title(title)
    axes.set_ylabel(unit)
    return _png(figure)


def _html(text: str) -> Any:
    """IPython's HTML object; the text itself where IPython is not installed (a plain script)."""
    try:
        from IPython.display import HTML
    except ImportError:
        return text
    return HTML(text)  # type: ignore[no-untyped-call]


def _display(shown: Shown) -> Shown:
    """Display each object in the running notebook, if any; return them."""
    try:
        from IPython import get_ipython
    except ImportError:  # not in a notebook: nothing to display in
        return shown
    if get_ipython() is not None:
        from IPython.display import display

        for item in shown:
            display(item)  # type: ignore[no-untyped-call]
    return shown
