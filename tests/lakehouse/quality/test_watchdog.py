"""The DQ watchdog's checks: freshness against the SLA, volume against the trailing median, and
a whole run on a small lakehouse that logs every check and fails naming each breach."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medallion.lakehouse.errors import ConfigError, ExpectationFailed
from medallion.lakehouse.quality.breaker import BreakerCheck
from medallion.lakehouse.quality.event_log import read_dq_events
from medallion.lakehouse.quality.spec import TableSpec, VolumeWatch, Watch, spec_for
from medallion.lakehouse.quality.watchdog import (
    Status,
    WatchCheck,
    freshness_check,
    parse_as_of,
    run_watchdog,
    suite_check,
    volume_check,
    watched_specs,
)
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse

RUN_DATE = date(2026, 11, 10)
AS_OF = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
WATCH = VolumeWatch(window_days=3, min_history_days=2, min_ratio=0.5, max_ratio=2.0)


def days_back(*counts: int) -> dict[date, int]:
    """Counts for RUN_DATE - len + 1 … RUN_DATE, oldest first."""
    return {RUN_DATE - timedelta(days=len(counts) - 1 - i): n for i, n in enumerate(counts)}


@pytest.mark.parametrize(("counts", "status", "observed"), [
    (days_back(100, 110, 90, 100), Status.PASSED, "100 rows on 2026-11-10 = 1.00x median 100"),
    (days_back(100, 110, 90, 30), Status.FAILED, "30 rows on 2026-11-10 = 0.30x median 100"),
    (days_back(100, 110, 90, 250), Status.FAILED, "250 rows on 2026-11-10 = 2.50x median 100"),
    # Not loaded yet today: the newest loaded day is checked (a late load is freshness's).
    (days_back(100, 110, 90, 0), Status.PASSED, "90 rows on 2026-11-09 = 0.86x median 105"),
    ({**days_back(100, 110, 90), RUN_DATE + timedelta(days=1): 5}, Status.PASSED,
     "90 rows on 2026-11-10 = 0.86x median 105"),
    # The fifth day back is outside the three-day window; an empty day is no history.
    (days_back(5000, 0, 0, 80, 40), Status.SKIPPED, "40 rows on 2026-11-10, 1 earlier day(s)"),
    (days_back(40), Status.SKIPPED, "40 rows on 2026-11-10, 0 earlier day(s)"),
    ({}, Status.SKIPPED, "0 rows on 2026-11-10, 0 earlier day(s)"),
])
def test_volume_compares_the_newest_loaded_day_with_the_trailing_median(
        counts: dict[date, int], status: Status, observed: str) -> None:
    check = volume_check("bronze.x", WATCH, counts, RUN_DATE)
    assert (check.status, check.observed) == (status, observed)


def spec_with_sla(hours: float) -> TableSpec:
    return TableSpec(dataset="bronze.x", layer="bronze", watch=Watch(freshness_hours=hours))


@pytest.mark.parametrize(("newest", "status", "observed"), [
    (AS_OF - timedelta(hours=2), Status.PASSED, "2 h old"),
    (AS_OF - timedelta(hours=25, minutes=59), Status.PASSED, "25.98 h old"),
    (AS_OF - timedelta(hours=26), Status.FAILED, "26 h old"),
    (AS_OF - timedelta(days=3), Status.FAILED, "72 h old"),
    (None, Status.FAILED, "no rows"),
])
def test_freshness_is_the_newest_ingest_ts_against_the_sla(
        newest: datetime | None, status: Status, observed: str) -> None:
    check = freshness_check(spec_with_sla(26), newest, AS_OF)
    assert check == WatchCheck("bronze.x", "freshness", "freshness", status, observed,
                               "newest _ingest_ts under 26 h old")


def test_a_failed_warning_expectation_warns_and_a_critical_one_breaches() -> None:
    warn = suite_check(BreakerCheck("silver.t", "rule", critical=False, success=False,
                                    unexpected=3))
    critical = suite_check(BreakerCheck("silver.t", "rule", critical=True, success=False,
                                        unexpected=3))
    assert (warn.status, warn.breached) == (Status.WARNED, False)
    assert (critical.status, critical.breached, critical.observed) == (Status.FAILED, True, 3)


def test_the_repository_watches_every_bronze_and_silver_table() -> None:
    assert [spec.dataset for spec in watched_specs()] == [
        "bronze.crm_accounts", "bronze.customer_behavior", "bronze.fx_rates",
        "bronze.kafka_orders", "bronze.snowflake_orders", "silver.dim_customer",
        "silver.fact_events", "silver.fact_orders", "silver.fx_rates",
    ]
    assert spec_for("bronze.fx_rates").watch == Watch(
        freshness_hours=26, volume=VolumeWatch(min_ratio=0.9, max_ratio=1.1))


def test_as_of_is_iso_or_empty_and_anything_else_is_named() -> None:
    assert parse_as_of("") is None
    assert parse_as_of("2026-11-10T12:00:00") == AS_OF
    assert parse_as_of("2026-11-10T13:00:00+01:00") == AS_OF
    with pytest.raises(ConfigError, match=r"as_of: expected an ISO 8601 date-time .* found 'soon'"):
        parse_as_of("soon")
    with pytest.raises(ConfigError, match=r"datasets: expected tables whose spec has a watch "
                                          r"section, found gold\.orders_daily"):
        watched_specs(["gold.orders_daily"])


def write_fx_bronze(spark: SparkSession, lakehouse: Lakehouse, rows_by_day: dict[date, int],
                    ingested: datetime) -> None:
    rows = [(f"C{i}", ingested, day) for day, n in rows_by_day.items() for i in range(n)]
    frame = local_frame(spark, rows, "currency STRING, _ingest_ts TIMESTAMP, _proc_date DATE")
    lakehouse.write(frame, "bronze.fx_rates", mode="overwrite")


def test_a_run_logs_every_check_and_fails_naming_each_breach(
        spark: SparkSession, tmp_path: Path) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    write_fx_bronze(spark, lakehouse, days_back(10, 10, 10, 4), AS_OF - timedelta(hours=30))

    with pytest.raises(ExpectationFailed) as failure:
        run_watchdog(lakehouse, run_date=RUN_DATE, as_of=AS_OF, run_id="r1", task="watch",
                     suite_layers=(), datasets=["bronze.fx_rates", "bronze.crm_accounts"])

    assert str(failure.value) == (
        "DQ watchdog: 3 check(s) breached at 2026-11-10T12:00:00+00:00:\n"
        "  bronze.crm_accounts: freshness failed (observed no rows, expected newest _ingest_ts "
        "under 26 h old)\n"
        "  bronze.fx_rates: freshness failed (observed 30 h old, expected newest _ingest_ts "
        "under 26 h old)\n"
        "  bronze.fx_rates: volume failed (observed 4 rows on 2026-11-10 = 0.40x median 10, "
        "expected 0.9x to 1.1x the median of the trailing days)"
    )
    events = read_dq_events(lakehouse).where("event_type = 'watchdog_check'")
    logged = sorted(
        (row["run_id"], row["job"], row["task"], row["dataset"], row["layer"],
         json.loads(row["details"])["watchdog"]["check"],
         json.loads(row["details"])["watchdog"]["status"])
        for row in events.collect()
    )
    assert logged == [
        ("r1", "dq_watchdog", "watch", "bronze.crm_accounts", "bronze", "freshness", "failed"),
        ("r1", "dq_watchdog", "watch", "bronze.fx_rates", "bronze", "freshness", "failed"),
        ("r1", "dq_watchdog", "watch", "bronze.fx_rates", "bronze", "volume", "failed"),
    ]


def test_a_healthy_table_passes_and_is_logged(spark: SparkSession, tmp_path: Path) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    write_fx_bronze(spark, lakehouse, days_back(10, 10, 10, 10), AS_OF - timedelta(hours=1))

    result = run_watchdog(lakehouse, run_date=RUN_DATE, as_of=AS_OF, run_id="r2", task="watch",
                          suite_layers=(), datasets=["bronze.fx_rates"])

    assert [(c.check, c.status, c.observed) for c in result.checks] == [
        ("freshness", Status.PASSED, "1 h old"),
        ("volume", Status.PASSED, "10 rows on 2026-11-10 = 1.00x median 10"),
    ]
    assert result.summary()["by_kind"] == {
        "freshness": {"passed": 1, "failed": 0, "warned": 0, "skipped": 0},
        "volume": {"passed": 1, "failed": 0, "warned": 0, "skipped": 0},
    }
    assert read_dq_events(lakehouse, "bronze.fx_rates").count() == 2
