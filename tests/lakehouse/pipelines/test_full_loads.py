"""A full load's later day: silver leaves out the records the load before sent too, drops those
older than its version, and ends as a full refresh would; a full build of large sources computes
its rows per action and writes the same silver."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import date, datetime
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse import spark as spark_module
from medallion.lakehouse import tables
from medallion.lakehouse.pipelines import StepResult, silver
from medallion.lakehouse.pipelines.silver import LINEAGE_COLUMNS, update_silver
from medallion.lakehouse.spark import computed_once, local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from tests.support.shapes import CRM_BRONZE, KAFKA_BRONZE, SNOWFLAKE_BRONZE

DAY_1, DAY_2, DAY_3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour)


def meta(source: str, day: date) -> tuple[object, ...]:
    return (None, f"raw/{source}/load_dt={day}/part-0.jsonl", at(day, 23), "bronze-run", day)


def order(order_id: str, status: str, currency: str, updated: datetime, day: date,
          amount: str = "10.00") -> tuple[object, ...]:
    return (order_id, "cust_1", at(DAY_1, 8), status, currency, Decimal(amount), updated,
            *meta("snowflake", day))


def land(house: Lakehouse, spark: SparkSession, *, kafka: list[tuple[object, ...]],
         snowflake: list[tuple[object, ...]]) -> None:
    """The bronze tables silver.dim_customer and silver.fact_orders read, every day's rows; the
    CRM knows one customer, cust_1."""
    crm = [("cust_1", "Ada Novak", "ada@example.com", "+1 555 0101", "US", "lead",
            at(DAY_1, 1), *meta("crm", DAY_1))]
    for rows, schema, table in ((crm, CRM_BRONZE, "bronze.crm_accounts"),
                                (kafka, KAFKA_BRONZE, "bronze.kafka_orders"),
                                (snowflake, SNOWFLAKE_BRONZE, "bronze.snowflake_orders")):
        house.write(local_frame(spark, rows, schema), table, partition_by=["_proc_date"])


def two_days(house: Lakehouse) -> StepResult:
    """silver.dim_customer of day 1, then silver.fact_orders of day 1 and day 2: day 2's result."""
    update_silver(house, "silver.dim_customer", DAY_1, run_id="day-1")
    update_silver(house, "silver.fact_orders", DAY_1, run_id="day-1")
    return update_silver(house, "silver.fact_orders", DAY_2, run_id="day-2")


def test_a_full_loads_resent_records_are_counted_not_checked_and_silver_equals_a_refresh(
    spark: SparkSession, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the day's update of a key silver holds (ord_1) merged apart from its new order
    (ord_4), as silver does for a large table (the next test takes one MERGE)."""
    monkeypatch.setattr(silver, "MERGE_APART_MIN_BYTES", 0)
    house = Lakehouse.open(spark, StorageRoot(tmp_path))  # type: ignore[arg-type]
    # Snowflake's full load carries an order's older versions too (ord_1 was placed, then
    # shipped): the day-2 snapshot holds nothing new but ord_4.
    snapshots = {
        day: [
            order("ord_1", "placed", "USD", at(DAY_1, 8), day),
            order("ord_1", "shipped", "USD", at(DAY_1, 9), day),
            order("ord_2", "placed", "XXX", at(DAY_1, 9), day),  # quarantined by day 1 alone
            order("ord_3", "placed", "EUR", at(DAY_1, 10), day),
            *([order("ord_3", "placed", "EUR", at(DAY_1, 10), day),  # a copy
               order("ord_4", "placed", "USD", at(DAY_2, 8), day)] if day == DAY_2 else []),
        ]
        for day in (DAY_1, DAY_2)
    }
    # A CDC update of ord_1 on day 2 carries neither status nor order_ts: it keeps the latest
    # version's (shipped, not the older placed).
    kafka = [("ord_1", "cust_1", Decimal("12.00"), "USD", at(DAY_2, 9), "u", 0, 1,
              at(DAY_2, 9), "ord_1", *meta("kafka", DAY_2))]
    land(house, spark, kafka=kafka,
         snowflake=[row for snapshot in snapshots.values() for row in snapshot])

    result = two_days(house)

    merges = [commit for commit in house.history("silver.fact_orders", limit=10)
              if commit.operation == "MERGE"]
    assert len(merges) == 2
    assert result.as_dict() == {
        "step": "update_fact_orders", "target": "silver.fact_orders", "rows_in": 7,
        "rows_written": 2, "rows_quarantined": 0, "rows_dropped": {
            "duplicate_record": 0, "superseded_by_newer_version": 0, "unchanged": 5},
    }
    daily = {table: house.read(table).drop("_run_id", *LINEAGE_COLUMNS).localCheckpoint()
             for table in ("silver.fact_orders", "silver.fact_orders_quarantine")}
    expected = local_frame(
        spark,
        [("ord_1", at(DAY_1, 8), "shipped", Decimal("12.00"), at(DAY_2, 9), "kafka"),
         ("ord_3", at(DAY_1, 8), "placed", Decimal("10.00"), at(DAY_1, 10), "snowflake"),
         ("ord_4", at(DAY_1, 8), "placed", Decimal("10.00"), at(DAY_2, 8), "snowflake")],
        "order_id STRING, order_ts TIMESTAMP, status STRING, order_amount DECIMAL(18,2), "
        "updated_at TIMESTAMP, _source_system STRING",
    )
    assertDataFrameEqual(daily["silver.fact_orders"].select(*expected.columns), expected,
                         checkRowOrder=False)
    assert sorted((row.order_id, row._errors[0].name) for row in
                  daily["silver.fact_orders_quarantine"].collect()) == [
        ("ord_2", "currency_in_set")]

    update_silver(house, "silver.fact_orders", DAY_2, run_id="refresh", full_refresh=True)
    for table, frame in daily.items():
        assertDataFrameEqual(house.read(table).drop("_run_id", *LINEAGE_COLUMNS), frame,
                             checkRowOrder=False)


def test_a_resent_order_older_than_silvers_version_lends_a_later_update_nothing(
    spark: SparkSession, tmp_path: object
) -> None:
    house = Lakehouse.open(spark, StorageRoot(tmp_path))  # type: ignore[arg-type]
    # Snowflake resends ord_1 as placed, on day 2 with another amount but the same updated_at;
    # Kafka cancelled it on day 1 and updates its amount on day 2 (no status): the update keeps
    # the cancellation, as a full refresh has it.
    snapshots = [order("ord_1", "placed", "USD", at(DAY_1, 8), DAY_1),
                 order("ord_1", "placed", "USD", at(DAY_1, 8), DAY_2, amount="11.00")]
    kafka = [("ord_1", "cust_1", Decimal("10.00"), "USD", at(DAY_1, 10), "d", 0, 1,
              at(DAY_1, 10), "ord_1", *meta("kafka", DAY_1)),
             ("ord_1", "cust_1", Decimal("12.00"), "USD", at(DAY_2, 9), "u", 0, 2,
              at(DAY_2, 9), "ord_1", *meta("kafka", DAY_2))]
    land(house, spark, kafka=kafka, snowflake=snapshots)

    result = two_days(house)

    assert result.as_dict() == {
        "step": "update_fact_orders", "target": "silver.fact_orders", "rows_in": 2,
        "rows_written": 1, "rows_quarantined": 0, "rows_dropped": {
            "duplicate_record": 0, "superseded_by_newer_version": 1, "unchanged": 0},
    }
    daily = house.read("silver.fact_orders").drop("_run_id", *LINEAGE_COLUMNS).localCheckpoint()
    expected = local_frame(
        spark,
        [("ord_1", at(DAY_1, 8), "cancelled", Decimal("12.00"), at(DAY_2, 9), "kafka")],
        "order_id STRING, order_ts TIMESTAMP, status STRING, order_amount DECIMAL(18,2), "
        "updated_at TIMESTAMP, _source_system STRING",
    )
    assertDataFrameEqual(daily.select(*expected.columns), expected)
    update_silver(house, "silver.fact_orders", DAY_2, run_id="refresh", full_refresh=True)
    assertDataFrameEqual(house.read("silver.fact_orders").drop("_run_id", *LINEAGE_COLUMNS),
                         daily)


def test_a_day_after_a_load_silver_never_built_is_compared_with_the_last_one_it_did(
    spark: SparkSession, tmp_path: object
) -> None:
    house = Lakehouse.open(spark, StorageRoot(tmp_path))  # type: ignore[arg-type]
    # ord_2 first comes with day 2's load, which bronze landed but silver never built (its run
    # failed): day 3 must take ord_2, though day 3's load repeats day 2's.
    loads = {DAY_1: ["ord_1"], DAY_2: ["ord_1", "ord_2"], DAY_3: ["ord_1", "ord_2"]}
    land(house, spark, kafka=[], snowflake=[
        order(order_id, "placed", "USD", at(DAY_1, 8), day)
        for day, order_ids in loads.items() for order_id in order_ids])
    update_silver(house, "silver.dim_customer", DAY_1, run_id="day-1")
    update_silver(house, "silver.fact_orders", DAY_1, run_id="day-1")

    result = update_silver(house, "silver.fact_orders", DAY_3, run_id="day-3")

    assert result.as_dict() == {
        "step": "update_fact_orders", "target": "silver.fact_orders", "rows_in": 2,
        "rows_written": 1, "rows_quarantined": 0, "rows_dropped": {
            "duplicate_record": 0, "superseded_by_newer_version": 0, "unchanged": 1},
    }
    assert sorted(row.order_id for row in house.read("silver.fact_orders").collect()) == [
        "ord_1", "ord_2"]


def test_large_sources_are_not_kept_on_a_full_build_and_silver_is_the_same(
    spark: SparkSession, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    house = Lakehouse.open(spark, StorageRoot(tmp_path))  # type: ignore[arg-type]
    orders = [order("ord_1", "placed", "USD", at(DAY_1, 8), DAY_1),
              order("ord_1", "shipped", "USD", at(DAY_1, 9), DAY_1),
              order("ord_2", "placed", "XXX", at(DAY_1, 9), DAY_1)]
    land(house, spark, kafka=[], snowflake=orders)
    update_silver(house, "silver.dim_customer", DAY_1, run_id="day-1")
    kept: list[bool] = []  # computed_once's keep, call by call: lookups, checked, marked rows

    def recording(frame: DataFrame, *, keep: bool = True) -> AbstractContextManager[DataFrame]:
        kept.append(keep)
        return computed_once(frame, keep=keep)

    monkeypatch.setattr(silver, "computed_once", recording)
    monkeypatch.setattr(spark_module, "computed_once", recording)  # computed_once_each's
    small = update_silver(house, "silver.fact_orders", DAY_1, run_id="small")
    assert kept == [True, True, True]
    built = {table: house.read(table).drop("_run_id").localCheckpoint()
             for table in ("silver.fact_orders", "silver.fact_orders_quarantine")}

    kept.clear()
    monkeypatch.setattr(tables, "SMALL_TABLE_BYTES", 0)  # every table is over the limit
    large = update_silver(house, "silver.fact_orders", DAY_1, run_id="large", full_refresh=True)
    assert kept == [False, False, False]  # computed again for each action instead
    assert large.as_dict() == small.as_dict()
    for table, frame in built.items():
        assertDataFrameEqual(house.read(table).drop("_run_id"), frame, checkRowOrder=False)

    kept.clear()
    update_silver(house, "silver.fact_orders", DAY_1, run_id="daily")
    # A daily increment over the limit: the lookups are read per query; the day's rows (their
    # keys narrow the table's), the rows set aside, the rows re-checked for late parents, the
    # checked and the marked rows stay kept.
    assert kept == [True, False, True, True, True, True]
