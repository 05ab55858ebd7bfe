"""bronze → silver → gold through the pipeline steps, on a small inline slice.

Bronze tables are written from inline rows (the bronze layer has its own tests); the silver and
gold steps then run with the repository's specs, and the DQ breaker checks each layer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse import tables
from medallion.lakehouse.errors import ConfigError, ExpectationFailed
from medallion.lakehouse.lineage.columns import analyzed_plan_text
from medallion.lakehouse.pipelines import StepResult, gold
from medallion.lakehouse.pipelines.gold import (
    INCREMENTAL_MIN_BYTES,
    build_gold,
    gold_rows,
    incremental_min_bytes,
    read_built_from,
)
from medallion.lakehouse.pipelines.gold import log as gold_log
from medallion.lakehouse.pipelines.silver import silver_tables, update_silver
from medallion.lakehouse.quality.breaker import run_breaker
from medallion.lakehouse.quality.engine import sample_quarantined
from medallion.lakehouse.quality.event_log import read_dq_events
from medallion.lakehouse.quality.spec import TableSpec
from medallion.lakehouse.spark import GOLD_INCREMENTAL_MIN_BYTES_CONF, local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from tests.support.shapes import (
    BEHAVIOR_BRONZE,
    CRM_BRONZE,
    FX_BRONZE,
    KAFKA_BRONZE,
    SNOWFLAKE_BRONZE,
)

DAY = date(2026, 11, 2)
LANDED = datetime(2026, 11, 2, 23, 30)
SALT = "test-salt"
RUN = "run-1"


def t(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 2, hour, minute)


def meta(source: str) -> tuple[object, ...]:
    return (None, f"raw/{source}/load_dt=2026-11-02/part-0.jsonl", LANDED, "bronze-run", DAY)


CRM = [
    ("cust_1", "Ada Novak", "ada@example.com", "+1 555 0101", "US", "lead", t(1), *meta("crm")),
    ("cust_2", "Ben Kim", "ben@example.com", "+49 555 0102", "DE", "customer", t(2), *meta("crm")),
    # a later version of cust_2 and an exact copy of it
    ("cust_2", "Ben Kim", "ben@example.com", "+49 555 0102", "DE", "evangelist", t(5),
     *meta("crm")),
    ("cust_2", "Ben Kim", "ben@example.com", "+49 555 0102", "DE", "evangelist", t(5),
     *meta("crm")),
    (None, "No Key", "nokey@example.com", "+1 555 0000", "US", "lead", t(3), *meta("crm")),
    ("cust_3", "Cy Lee", "cy@example.com", "+1 555 0103", "US", "unknown", t(4), *meta("crm")),
]
SNOWFLAKE = [
    ("ord_1", "cust_1", t(8), "placed", "USD", Decimal("10.00"), t(8), *meta("snowflake")),
    ("ord_2", "cust_2", t(9), "shipped", "EUR", Decimal("92.00"), t(12), *meta("snowflake")),
    ("ord_3", "cust_2", t(10), "cancelled", "EUR", Decimal("46.00"), t(11), *meta("snowflake")),
    (None, "cust_1", t(10), "placed", "USD", Decimal("5.00"), t(10), *meta("snowflake")),
    ("ord_9", "cust_9", t(10), "placed", "USD", Decimal("5.00"), t(10), *meta("snowflake")),
    ("ord_8", "cust_1", t(10), "placed", "USD", Decimal("-5.00"), t(10), *meta("snowflake")),
]
KAFKA = [
    # the same change as Snowflake's ord_2 row (a tie goes to Snowflake), and a newer one
    ("ord_2", "cust_2", Decimal("92.00"), "EUR", t(12), "u", 0, 1, t(12), "ord_2", *meta("kafka")),
    ("ord_1", "cust_1", Decimal("10.00"), "USD", t(13), "d", 0, 2, t(13), "ord_1", *meta("kafka")),
    ("ord_7", "cust_1", None, "USD", t(13), "c", 0, 3, t(13), "ord_7", *meta("kafka")),
]
BEHAVIOR = [
    ("evt_1", "sess_0123456789abcdef", "cust_1", "page_view", t(7), "/", "mobile", None, None,
     *meta("redshift")),
    ("evt_2", "sess_0123456789abcdef", "cust_1", "search", t(7, 5), "/search", "mobile", None,
     None, *meta("redshift")),
    ("evt_3", "sess-bad", "cust_2", "page_view", t(9), "/", "desktop", None, None,
     *meta("redshift")),
]
FX = [
    (DAY, "USD", "EUR", Decimal("0.92000000"), *meta("fx_rates")),
    (DAY, "USD", "USD", Decimal("1.00000000"), *meta("fx_rates")),
]
ORDER_COLUMNS = ["order_id", "customer_id", "order_ts", "status", "currency", "order_amount",
                 "updated_at", "_source_system"]


@pytest.fixture(scope="module")
def lakehouse(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Lakehouse:
    """A lakehouse whose bronze tables hold the slice above, for ``DAY``."""
    house = Lakehouse.open(spark, StorageRoot(tmp_path_factory.mktemp("build-steps")))
    # The KAFKA rows carry the wrong-type amount as a rescued value, as bronze would.
    kafka = local_frame(spark, KAFKA, KAFKA_BRONZE).withColumn(
        "_rescued_data",
        sf.when(
            sf.col("order_id") == "ord_7",
            sf.create_map(sf.lit("order_amount"), sf.lit("1,5")),
        ),
    )
    for table, rows in (
        ("bronze.crm_accounts", local_frame(spark, CRM, CRM_BRONZE)),
        ("bronze.snowflake_orders", local_frame(spark, SNOWFLAKE, SNOWFLAKE_BRONZE)),
        ("bronze.kafka_orders", kafka),
        ("bronze.customer_behavior", local_frame(spark, BEHAVIOR, BEHAVIOR_BRONZE)),
        ("bronze.fx_rates", local_frame(spark, FX, FX_BRONZE)),
    ):
        house.write(rows, table, partition_by=["_proc_date"])
    return house


@pytest.fixture(scope="module")
def silver_results(lakehouse: Lakehouse) -> dict[str, StepResult]:
    """Every silver table of the catalog, in build order."""
    return {
        table.dataset: update_silver(lakehouse, table.dataset, DAY, run_id=RUN)
        for table in silver_tables()
    }


def without_run_ids(frame: DataFrame) -> DataFrame:
    return frame.drop("_run_id")


def snapshot(lakehouse: Lakehouse, tables: tuple[str, ...]) -> dict[str, list[str]]:
    return {
        table: sorted(map(str, without_run_ids(lakehouse.read(table)).collect()))
        for table in tables
    }


def test_silver_counts_conserve_every_bronze_row(silver_results: dict[str, StepResult]) -> None:
    assert {name: result.as_dict() for name, result in silver_results.items()} == {
        "silver.dim_customer": {
            "step": "update_dim_customer", "target": "silver.dim_customer", "rows_in": 6,
            "rows_written": 2, "rows_quarantined": 2,
            "rows_dropped": {"duplicate_record": 1, "superseded_by_newer_version": 1},
        },
        "silver.fact_orders": {
            "step": "update_fact_orders", "target": "silver.fact_orders", "rows_in": 9,
            "rows_written": 3, "rows_quarantined": 4,
            "rows_dropped": {"duplicate_record": 0, "superseded_by_newer_version": 2,
                             "unchanged": 0},
        },
        "silver.fact_events": {
            "step": "update_fact_events", "target": "silver.fact_events", "rows_in": 3,
            "rows_written": 2, "rows_quarantined": 1,
            "rows_dropped": {"duplicate_record": 0, "superseded_by_newer_version": 0},
        },
        "silver.fx_rates": {
            "step": "update_fx_rates", "target": "silver.fx_rates", "rows_in": 2,
            "rows_written": 2, "rows_quarantined": 0,
            "rows_dropped": {"duplicate_record": 0, "superseded_by_newer_version": 0},
        },
    }


def test_fact_orders_keeps_the_latest_version_with_cdc_fields_carried(
    lakehouse: Lakehouse, silver_results: dict[str, StepResult]
) -> None:
    expected = local_frame(
        lakehouse.spark,
        [
            ("ord_1", "cust_1", t(8), "cancelled", "USD", Decimal("10.00"), t(13), "kafka"),
            ("ord_2", "cust_2", t(9), "shipped", "EUR", Decimal("92.00"), t(12), "snowflake"),
            ("ord_3", "cust_2", t(10), "cancelled", "EUR", Decimal("46.00"), t(11), "snowflake"),
        ],
        "order_id STRING, customer_id STRING, order_ts TIMESTAMP, status STRING, "
        "currency STRING, order_amount DECIMAL(18,2), updated_at TIMESTAMP, _source_system STRING",
    )
    assertDataFrameEqual(lakehouse.read("silver.fact_orders").select(*ORDER_COLUMNS), expected)


def test_each_rejected_row_is_quarantined_with_the_rules_it_failed(
    lakehouse: Lakehouse, silver_results: dict[str, StepResult]
) -> None:
    def errors(table: str, key: str) -> list[tuple[object, list[str]]]:
        rows = lakehouse.read(table).select(key, "_errors.name", "_run_id").collect()
        assert {row["_run_id"] for row in rows} == {RUN}
        return sorted(((row[key], row["name"]) for row in rows), key=str)

    assert errors("silver.fact_orders_quarantine", "order_id") == sorted(
        [
            (None, ["order_id_not_null"]),
            ("ord_7", ["order_amount_is_decimal"]),
            ("ord_8", ["order_amount_not_negative"]),
            ("ord_9", ["customer_in_dim_customer"]),
        ],
        key=str,
    )
    assert errors("silver.dim_customer_quarantine", "customer_id") == sorted(
        [(None, ["customer_id_not_null"]), ("cust_3", ["lifecycle_stage_in_set"])], key=str
    )
    assert errors("silver.fact_events_quarantine", "event_id") == [
        ("evt_3", ["session_id_format"])
    ]


def test_each_step_samples_the_quarantined_rows_it_wrote(
    lakehouse: Lakehouse, silver_results: dict[str, StepResult]
) -> None:
    """The sample a notebook shows is the quarantine partition's rows (all of them: fewer than
    the sample's size), as a read of the table would show them; none from a step that
    quarantined nothing."""
    for dataset, result in silver_results.items():
        if not result.rows_quarantined:
            assert result.quarantine_sample is None
            continue
        sample = result.quarantine_sample
        assert sample is not None
        table = lakehouse.read(f"{dataset}_quarantine").where(sf.col("_proc_date") == DAY)
        read = sample_quarantined(table)
        assert sample.columns == read.columns
        assert sorted(sample.rows, key=str) == sorted(read.rows, key=str)
        assert len(sample.rows) == result.rows_quarantined


def test_dq_metrics_reach_the_event_log_in_the_dlt_shape(
    lakehouse: Lakehouse, silver_results: dict[str, StepResult]
) -> None:
    events = read_dq_events(lakehouse, "silver.fact_events").collect()
    assert len(events) == 1
    details = events[0]["details"]
    progress = json.loads(details)["flow_progress"]
    assert progress["metrics"] == {"num_output_rows": 2}
    session_rule = [e for e in progress["data_quality"]["expectations"]
                    if e["name"] == "session_id_format"]
    assert session_rule == [{"name": "session_id_format", "dataset": "silver.fact_events",
                             "passed_records": 2, "failed_records": 1}]


def test_rerunning_the_day_changes_nothing(
    lakehouse: Lakehouse, silver_results: dict[str, StepResult]
) -> None:
    tables = ("silver.dim_customer", "silver.fact_orders", "silver.fact_events",
              "silver.fact_orders_quarantine", "silver.dim_customer_quarantine")
    before = snapshot(lakehouse, tables)
    again = {dataset: update_silver(lakehouse, dataset, DAY, run_id="run-2").as_dict()
             for dataset in ("silver.dim_customer", "silver.fact_orders", "silver.fact_events")}
    assert snapshot(lakehouse, tables) == before
    # fact_orders' full load: ord_3, all of whose rows silver holds, is counted unchanged, not
    # merged again; ord_1 and ord_2 have Kafka rows too, so all their rows reach the dedupe.
    first = silver_results["silver.fact_orders"].as_dict()
    assert again.pop("silver.fact_orders") == {
        **first, "rows_written": 2,
        "rows_dropped": {"duplicate_record": 0, "superseded_by_newer_version": 2, "unchanged": 1},
    }
    assert again == {dataset: silver_results[dataset].as_dict() for dataset in again}


def test_the_silver_breaker_passes_on_clean_silver(
    lakehouse: Lakehouse, silver_results: dict[str, StepResult]
) -> None:
    result = run_breaker(lakehouse, "silver", run_date=DAY)
    assert result.passed
    assert result.rows == {"silver.dim_customer": 2, "silver.fact_events": 2,
                           "silver.fact_orders": 3, "silver.fx_rates": 2}


def test_gold_is_built_with_check_constraints(
    lakehouse: Lakehouse, silver_results: dict[str, StepResult]
) -> None:
    result = build_gold(lakehouse, "gold.fact_customer_360", run_id=RUN, salt=SALT)
    assert (result.rows_in, result.rows_written) == (2, 2)
    daily = build_gold(lakehouse, "gold.orders_daily", run_id=RUN, salt=SALT)
    assert (daily.rows_in, daily.rows_written) == (3, 3)
    fx = build_gold(lakehouse, "gold.fx_daily_change", run_id=RUN, salt=SALT)
    assert (fx.rows_in, fx.rows_written) == (2, 2)
    gold = {row["order_count"]: row for row in lakehouse.read("gold.fact_customer_360").collect()}
    # cust_1: ord_1 cancelled; cust_2: ord_2 shipped (92 EUR = 100 USD), ord_3 cancelled
    assert {count: row["lifetime_value_usd"] for count, row in gold.items()} == {
        1: Decimal("0.00"), 2: Decimal("100.00"),
    }
    properties = {
        row["key"] for row in
        lakehouse.spark.sql("SHOW TBLPROPERTIES gold.fact_customer_360").collect()
    }
    assert "delta.constraints.lifetime_value_not_negative" in properties
    # Created with its constraints: one commit, no ALTER TABLE per rule.
    operations = lakehouse.spark.sql(
        f"DESCRIBE HISTORY delta.`{lakehouse.path('gold.fact_customer_360')}`"
    ).select("operation")
    assert [row["operation"] for row in operations.collect()] == ["WRITE"]
    assert run_breaker(lakehouse, "gold").passed


def test_gold_is_built_whole_while_its_sources_are_small(
    lakehouse: Lakehouse, silver_results: dict[str, StepResult], caplog: pytest.LogCaptureFixture
) -> None:
    daily = "gold.orders_daily"
    if not lakehouse.exists(daily):  # built by the test above, unless this one runs alone
        build_gold(lakehouse, daily, run_id=RUN, salt=SALT)  # a first build is whole anyway
    with caplog.at_level(logging.INFO, logger=gold_log.name):
        build_gold(lakehouse, daily, run_id=RUN, salt=SALT)
    size = sum(lakehouse.size_in_bytes(source) for source in ("silver.fact_orders",
                                                              "silver.fx_rates"))
    assert 0 < size < INCREMENTAL_MIN_BYTES
    assert [record.getMessage() for record in caplog.records] == [
        f"{daily}: rebuilt whole (its sources hold {size:,} bytes, under "
        f"{GOLD_INCREMENTAL_MIN_BYTES_CONF} = {INCREMENTAL_MIN_BYTES:,}: a whole build costs less)"
    ]
    record = read_built_from(lakehouse.storage_root, daily)
    assert record is not None
    assert not record.incremental  # the integration world sets 0 and proves the partial path


def test_a_whole_build_reads_small_sources_once_into_memory(
    lakehouse: Lakehouse, silver_results: dict[str, StepResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    fx = "gold.fx_daily_change"
    read_by_transform: list[str] = []  # where each source frame the transform got reads from

    def transform(spec: TableSpec, silver: Mapping[str, DataFrame], salt: str) -> DataFrame:
        for frame in silver.values():
            plan = analyzed_plan_text(frame)
            table = "Relation spark_catalog.silver.fx_rates" in plan
            read_by_transform.append("memory" if "LogicalRDD" in plan
                                     else "table" if table else plan)
        return gold_rows(spec, silver, salt)

    monkeypatch.setattr(gold, "gold_rows", transform)
    build_gold(lakehouse, fx, run_id=RUN, salt=SALT)
    # The plan over the table (the column lineage, never run), then the build over memory.
    assert read_by_transform == ["table", "memory"]
    version = lakehouse.history(fx, limit=1)[0].version

    read_by_transform.clear()
    monkeypatch.setattr(tables, "SMALL_TABLE_BYTES", lakehouse.size_in_bytes("silver.fx_rates"))
    build_gold(lakehouse, fx, run_id=RUN, salt=SALT)
    assert read_by_transform == ["table", "table"]  # at the limit: each query reads the table
    assert lakehouse.history(fx, limit=1)[0].version == version  # the same rows: no write


def test_a_size_threshold_that_is_no_number_is_a_config_error(spark: SparkSession) -> None:
    spark.conf.set(GOLD_INCREMENTAL_MIN_BYTES_CONF, "256MB")
    try:
        with pytest.raises(ConfigError) as raised:
            incremental_min_bytes(spark)
    finally:
        spark.conf.unset(GOLD_INCREMENTAL_MIN_BYTES_CONF)
    assert str(raised.value) == (
        f"{GOLD_INCREMENTAL_MIN_BYTES_CONF}: expected a whole number of bytes, found '256MB'"
    )
    assert incremental_min_bytes(spark) == INCREMENTAL_MIN_BYTES


def test_a_gold_violation_fails_before_anything_is_written(
    lakehouse: Lakehouse, silver_results: dict[str, StepResult]
) -> None:
    build_gold(lakehouse, "gold.fact_customer_360", run_id=RUN, salt=SALT)
    before = lakehouse.spark.sql(
        f"DESCRIBE HISTORY delta.`{lakehouse.path('gold.fact_customer_360')}`"
    ).count()
    orders = lakehouse.read("silver.fact_orders")
    negative = orders.limit(1).withColumns(
        {
            "order_id": sf.lit("ord_bad"),
            "order_amount": sf.lit(Decimal("-1000.00")).cast("decimal(18,2)"),
            "status": sf.lit("placed"),
        }
    )
    lakehouse.write(negative, "silver.fact_orders", mode="append")
    with pytest.raises(ExpectationFailed, match="lifetime_value_not_negative"):
        build_gold(lakehouse, "gold.fact_customer_360", run_id=RUN, salt=SALT)
    after = lakehouse.spark.sql(
        f"DESCRIBE HISTORY delta.`{lakehouse.path('gold.fact_customer_360')}`"
    ).count()
    assert after == before
    with pytest.raises(ExpectationFailed, match="fact_orders: order_amount_not_negative"):
        run_breaker(lakehouse, "silver", run_date=DAY)
