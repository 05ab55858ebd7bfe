"""Rows quarantined only for a missing parent come back when the parent arrives on a later day."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.pipelines.silver import update_silver
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from tests.support.shapes import BEHAVIOR_BRONZE, CRM_BRONZE

DAY_1, DAY_2 = date(2026, 11, 2), date(2026, 11, 3)
SESSION = "sess_0123456789abcdef"


def meta(source: str, day: date) -> tuple[object, ...]:
    landed = datetime(day.year, day.month, day.day, 23, 30)
    return (None, f"raw/{source}/load_dt={day}/part-0.jsonl", landed, "bronze-run", day)


def customer(customer_id: str, stage: str, day: date) -> tuple[object, ...]:
    return (customer_id, "Ada Novak", "ada@example.com", "+1 555 0101", "US", stage,
            datetime(day.year, day.month, day.day, 1), *meta("crm", day))


def event(event_id: str, session: str, customer_id: str, day: date = DAY_1) -> tuple[object, ...]:
    return (event_id, session, customer_id, "page_view", datetime(2026, 11, 2, 7), "/", "mobile",
            None, None, *meta("redshift", day))


def test_an_orphan_event_is_merged_once_its_customer_arrives_as_a_full_refresh_would(
    spark: SparkSession, tmp_path: object
) -> None:
    house = Lakehouse.open(spark, StorageRoot(tmp_path))  # type: ignore[arg-type]
    crm = [
        customer("cust_1", "lead", DAY_1),
        customer("cust_2", "unknown", DAY_1),  # quarantined: its events are orphans on day 1
        customer("cust_2", "customer", DAY_2),  # the CRM sends it again, valid, on day 2
    ]
    events = [
        event("evt_1", SESSION, "cust_1"),
        event("evt_2", SESSION, "cust_2"),  # an orphan only: back on day 2
        event("evt_3", "sess-bad", "cust_2"),  # an orphan with a bad session: stays out
    ]
    house.write(local_frame(spark, crm, CRM_BRONZE), "bronze.crm_accounts",
                partition_by=["_proc_date"])
    house.write(local_frame(spark, events, BEHAVIOR_BRONZE), "bronze.customer_behavior",
                partition_by=["_proc_date"])

    for day in (DAY_1, DAY_2):
        update_silver(house, "silver.dim_customer", day, run_id=f"run-{day}")
        result = update_silver(house, "silver.fact_events", day, run_id=f"run-{day}")

    assert result.as_dict() == {
        "step": "update_fact_events", "target": "silver.fact_events", "rows_in": 1,
        "rows_written": 1, "rows_quarantined": 0, "rows_dropped": {
            "duplicate_record": 0, "superseded_by_newer_version": 0},
    }
    daily = {table: house.read(table).drop("_run_id").localCheckpoint()
             for table in ("silver.fact_events", "silver.fact_events_quarantine")}
    assert sorted(row.event_id for row in daily["silver.fact_events"].collect()) == [
        "evt_1", "evt_2"]
    assert [(row.event_id, [error.name for error in row._errors])
            for row in daily["silver.fact_events_quarantine"].collect()] == [
        ("evt_3", ["session_id_format", "customer_in_dim_customer"])]

    update_silver(house, "silver.fact_events", DAY_2, run_id="refresh", full_refresh=True)
    assertDataFrameEqual(house.read("silver.fact_events"), daily["silver.fact_events"],
                         checkRowOrder=False)
    # The same rows stay quarantined; their reasons are those of the run that judged them.
    identity = ["event_id", "_source_file", "_proc_date"]
    assertDataFrameEqual(house.read("silver.fact_events_quarantine").select(identity),
                         daily["silver.fact_events_quarantine"].select(identity))


def test_a_row_readmitted_from_an_older_partition_leaves_it_and_later_partitions_stay(
    spark: SparkSession, tmp_path: object
) -> None:
    house = Lakehouse.open(spark, StorageRoot(tmp_path))  # type: ignore[arg-type]
    day_3 = date(2026, 11, 4)
    crm = [customer("cust_1", "lead", DAY_1), customer("cust_2", "customer", day_3)]
    events = [
        event("evt_1", SESSION, "cust_2"),  # an orphan on day 1, back on day 3
        event("evt_2", "sess-bad", "cust_1", DAY_2),  # quarantined on day 2: stays there
    ]
    house.write(local_frame(spark, crm, CRM_BRONZE), "bronze.crm_accounts",
                partition_by=["_proc_date"])
    house.write(local_frame(spark, events, BEHAVIOR_BRONZE), "bronze.customer_behavior",
                partition_by=["_proc_date"])

    for day in (DAY_1, DAY_2, day_3):
        update_silver(house, "silver.dim_customer", day, run_id=f"run-{day}")
        update_silver(house, "silver.fact_events", day, run_id=f"run-{day}")

    assert [row.event_id for row in house.read("silver.fact_events").collect()] == ["evt_1"]
    assert [(row.event_id, row._proc_date) for row in
            house.read("silver.fact_events_quarantine").collect()] == [("evt_2", DAY_2)]
