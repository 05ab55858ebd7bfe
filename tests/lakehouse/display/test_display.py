"""What notebooks show: each step's figures as HTML, DQ checks one row each with a chart."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy
import pytest
from pyspark.sql import SparkSession

from medallion.lakehouse.display import histogram_bins, show, show_gold, show_quarantine
from medallion.lakehouse.pipelines import StepResult
from medallion.lakehouse.pipelines.ingest import IngestResult
from medallion.lakehouse.quality.breaker import BreakerCheck, BreakerResult
from medallion.lakehouse.quality.engine import QuarantineSample
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from tests.support.spark_jobs import spark_jobs_of

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_step_shows_its_counts_as_a_table() -> None:
    result = StepResult("update_silver", "silver.fact_orders", rows_in=10, rows_written=7,
                        rows_dropped={"duplicate_key": 1}, rows_quarantined=2)

    (table,) = show(result)

    assert table.data == (
        '<table class="medallion"><caption style="text-align:left"><b>update_silver → '
        "silver.fact_orders</b></caption><thead><tr><th></th><th>rows</th></tr></thead><tbody>"
        "<tr><td>rows in</td><td>10</td></tr><tr><td>rows written</td><td>7</td></tr>"
        "<tr><td>rows quarantined</td><td>2</td></tr>"
        "<tr><td>rows dropped (duplicate_key)</td><td>1</td></tr></tbody></table>"
    )


def test_an_ingest_shows_rows_landed_and_rows_per_second() -> None:
    result = IngestResult("crm", "accounts", date(2026, 11, 2), "raw/crm/accounts/x", 300, 1.5)

    (table,) = show(result)

    assert "<td>crm/accounts</td><td>2026-11-02</td><td>300</td><td>1.5</td><td>200.0</td>" \
        in table.data


def test_a_breaker_names_every_expectation_with_its_pass_rate_and_charts_the_failures() -> None:
    result = BreakerResult("silver", (
        BreakerCheck("silver.fact_orders", "order_id_not_null", True, True, 0),
        BreakerCheck("silver.fact_orders", "amount_positive", False, False, 25),
        BreakerCheck("silver.fact_orders", "row_count_between", True, True),
    ), rows={"silver.fact_orders": 100}, not_rechecked=(("silver.fact_orders", "op_known"),))

    table, chart = show(result)

    assert table.data.count("<tr><td>silver.fact_orders</td>") == 4
    assert ("<td>op_known</td><td></td><td>checked by its step, not here: a column only the "
            "step&#x27;s input had</td>") in table.data
    assert ("<td>amount_positive</td><td>warn</td><td>FAILED</td><td>75</td><td>25</td>"
            "<td>75.0%</td>") in table.data
    assert ("<td>order_id_not_null</td><td>fail the job</td><td>passed</td><td>100</td>"
            "<td>0</td><td>100.0%</td>") in table.data
    assert "<td>row_count_between</td><td>fail the job</td><td>passed</td><td><i>NULL</i>" \
        in table.data
    assert chart.data.startswith(PNG)


def test_a_passing_breaker_has_no_chart() -> None:
    result = BreakerResult("gold", (BreakerCheck("gold.t", "key_unique", True, True, 0),),
                           rows={"gold.t": 5})

    assert len(show(result)) == 1


def test_values_are_escaped() -> None:
    (table,) = show(StepResult("<b>", "gold.t", 0, 0))

    assert "&lt;b&gt;" in table.data


@pytest.fixture
def lakehouse(spark: SparkSession, tmp_path: Path) -> Lakehouse:
    return Lakehouse.open(spark, StorageRoot(tmp_path))


def test_a_quarantine_sample_leads_with_the_errors_of_each_row(lakehouse: Lakehouse) -> None:
    rows = local_frame(
        lakehouse.spark,
        [("o1", [("amount_positive", "amount > 0")], date(2026, 11, 2)),
         ("o2", [("amount_positive", "amount > 0")], date(2026, 11, 3))],
        "order_id string, _errors array<struct<name:string,rule:string>>, _proc_date date",
    )
    lakehouse.write(rows, "silver.orders_quarantine")

    (table,) = show_quarantine(lakehouse, "silver.orders_quarantine", date(2026, 11, 3))

    assert "<th>_errors</th><th>order_id</th><th>_proc_date</th>" in table.data
    assert "<tr><td>amount_positive</td><td>o2</td><td>2026-11-03</td></tr>" in table.data
    assert "o1" not in table.data


def test_a_step_that_quarantined_nothing_says_so_without_reading_the_table(
    lakehouse: Lakehouse,
) -> None:
    rows = local_frame(
        lakehouse.spark,
        [("o1", [("amount_positive", "amount > 0")], date(2026, 11, 2))],
        "order_id string, _errors array<struct<name:string,rule:string>>, _proc_date date",
    )
    lakehouse.write(rows, "silver.orders_quarantine")

    (shown,), jobs = spark_jobs_of(
        lakehouse.spark, "show-quarantine-of-nothing",
        lambda: show_quarantine(lakehouse, "silver.orders_quarantine", date(2026, 11, 3),
                                quarantined=0),
    )

    assert shown.data == (
        "<p><code>silver.orders_quarantine</code>: no rows quarantined on 2026-11-03</p>")
    assert jobs == 0


def test_a_sample_the_step_took_is_shown_without_reading_the_table(lakehouse: Lakehouse) -> None:
    sample = QuarantineSample(("_errors", "order_id"), (("amount_positive", "o2"),))

    (shown,), jobs = spark_jobs_of(
        lakehouse.spark, "show-quarantine-sample",
        lambda: show_quarantine(lakehouse, "silver.no_such_quarantine", date(2026, 11, 3),
                                quarantined=1, sample=sample),
    )

    assert "<th>_errors</th><th>order_id</th>" in shown.data
    assert "<tr><td>amount_positive</td><td>o2</td></tr>" in shown.data
    assert "quarantined rows of 2026-11-03" in shown.data
    assert jobs == 0


def test_gold_orders_daily_shows_its_rows_and_revenue_per_day_and_currency(
    lakehouse: Lakehouse,
) -> None:
    rows = local_frame(
        lakehouse.spark,
        [(date(2026, 11, 2), "EUR", 3, 30.0), (date(2026, 11, 3), "EUR", 1, 12.5)],
        "order_date date, currency string, orders int, revenue double",
    )
    lakehouse.write(rows, "gold.orders_daily")

    preview, chart = show_gold(lakehouse, "gold.orders_daily")

    assert "<tr><td>2026-11-03</td><td>EUR</td><td>1</td><td>12.5</td></tr>" in preview.data
    assert chart.data.startswith(PNG)


@pytest.mark.parametrize("local_rows", [1_000, 10])  # binned on the driver, then in Spark
def test_a_histogram_has_numpys_bins_whether_binned_on_the_driver_or_in_spark(
    spark: SparkSession, local_rows: int
) -> None:
    values = [round((i * 7919 % 1009) * 1.37 - 200.0, 2) for i in range(500)]
    frame = local_frame(spark, [(v,) for v in values] + [(None,)] * 3, "value double")

    edges, counts = histogram_bins(frame, "value", bins=30, local_rows=local_rows)

    expected_counts, expected_edges = numpy.histogram(values, bins=30)
    assert counts == expected_counts.tolist()
    assert edges == pytest.approx(expected_edges.tolist())


@pytest.mark.parametrize("local_rows", [1_000, 1])
def test_a_single_value_is_binned_as_numpy_bins_it(spark: SparkSession, local_rows: int) -> None:
    frame = local_frame(spark, [(4.5,), (4.5,), (None,)], "value double")

    edges, counts = histogram_bins(frame, "value", bins=4, local_rows=local_rows)

    assert (edges, counts) == ([4.0, 4.25, 4.5, 4.75, 5.0], [0, 0, 2, 0])
    assert counts == numpy.histogram([4.5, 4.5], bins=4)[0].tolist()


@pytest.mark.parametrize("rows", [[(None,)], []])
def test_a_column_without_values_has_no_bins(spark: SparkSession, rows: list[tuple[None]]) -> None:
    assert histogram_bins(local_frame(spark, rows, "value double"), "value") == ([], [])


def test_gold_customer_360_shows_the_charts_its_spec_names(lakehouse: Lakehouse) -> None:
    rows = local_frame(
        lakehouse.spark,
        [("a" * 64, "A***", "DE", 2, 10.5), ("b" * 64, "B***", "US", 1, 99.0),
         ("c" * 64, None, "FR", 0, None)],
        "customer_id string, name_masked string, country string, order_count int, "
        "lifetime_value_usd double",
    )
    lakehouse.write(rows, "gold.fact_customer_360")

    preview, histogram, top = show_gold(lakehouse, "gold.fact_customer_360")

    assert "first 10 rows" in preview.data
    assert histogram.data.startswith(PNG)
    assert "top 10 customers by lifetime value" in top.data
    assert top.data.index("B***") < top.data.index("A***")  # highest lifetime value first
