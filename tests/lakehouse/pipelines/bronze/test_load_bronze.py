"""The bronze step on raw loads in a private storage root: tables, drift log, counts, errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse import spark as spark_module
from medallion.lakehouse.errors import ContractViolation, ExpectationFailed, RawLoadError
from medallion.lakehouse.pipelines import StepResult
from medallion.lakehouse.pipelines import bronze as bronze_step
from medallion.lakehouse.pipelines.bronze import check_row_counts, load_bronze
from medallion.lakehouse.raw.landing import land_records, read_manifest
from medallion.lakehouse.settings import config_dir
from medallion.lakehouse.spark import computed_once, local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from tests.lakehouse.pipelines.bronze.conftest import (
    LANDED_AT,
    METADATA_DDL,
    RUN_ID,
    json_line,
    land_lines,
)

D1, D2, D3 = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26)
KAFKA_TABLES = (
    "bronze.kafka_orders",
    "bronze.kafka_orders_unknown_columns",
    "bronze.kafka_orders_quarantine",
)
CUT_OFF = '{"amount":61.56,"currency":"CAD",'


def kafka_event(offset: int, **changes: Any) -> dict[str, Any]:
    """A Kafka order event as the extractor lands it."""
    return {
        "amount": 61.56,
        "currency": "CAD",
        "customer_id": "cust_0002758",
        "event_ts": "2026-11-25T00:00:16+00:00",
        "op": "c",
        "order_id": f"ord_{offset:08d}",
        "_kafka_partition": 0,
        "_kafka_offset": offset,
        "_kafka_timestamp": 1795713574625,
        "_kafka_key": f"ord_{offset:08d}",
        **changes,
    }


@dataclass(frozen=True)
class KafkaDay:
    """A storage root whose Kafka load of D2 went through bronze once."""

    root: Path
    result: StepResult
    source_file: str

    def lakehouse(self, spark: SparkSession) -> Lakehouse:
        return Lakehouse.open(spark, StorageRoot(self.root))

    def copied(self, spark: SparkSession, to: Path) -> Lakehouse:
        """A lakehouse in a copy of this root (tables, raw loads and run state), to change."""
        shutil.copytree(self.root, to)
        return Lakehouse.open(spark, StorageRoot(to))


def with_day_3(spark: SparkSession, kafka_day: KafkaDay, to: Path,
               *events: dict[str, Any]) -> Lakehouse:
    """A copy of ``kafka_day``'s root with a Kafka load of D3 (a new day) landed."""
    lakehouse = kafka_day.copied(spark, to)
    land_lines(lakehouse.raw_root, "kafka", "orders", D3, [json_line(e) for e in events])
    return lakehouse


def day_3_rows(lakehouse: Lakehouse) -> list[Row]:
    """bronze.kafka_orders' partition of D3: each row's offset and run id, by offset."""
    return lakehouse.read("bronze.kafka_orders").where(f"_proc_date = '{D3}'").select(
        "kafka_offset", "_run_id").orderBy("kafka_offset").collect()


@pytest.fixture(scope="module")
def kafka_day(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> KafkaDay:
    """One Kafka load with a bad amount, unknown fields and a cut-off line, loaded once."""
    root = tmp_path_factory.mktemp("bronze-kafka")
    lakehouse = Lakehouse.open(spark, StorageRoot(root))
    lines = [
        json_line(kafka_event(10432)),
        json_line(kafka_event(10507, amount="18,76")),
        json_line(kafka_event(10528, _debug_flag=True)),
        CUT_OFF,
        json_line(kafka_event(10529, _debug_flag=True, _trace={"span": "a1"})),
    ]
    manifest = land_lines(lakehouse.raw_root, "kafka", "orders", D2, lines)
    result = load_bronze(lakehouse, "kafka_orders", D2, run_id=RUN_ID)
    source_file = f"raw/kafka/orders/load_dt=2026-11-25/{manifest.files[0].name}"
    return KafkaDay(root, result, source_file)


def test_a_load_counts_rows_written_plus_lines_quarantined(kafka_day: KafkaDay) -> None:
    assert kafka_day.result == StepResult(
        "load_bronze_kafka_orders",
        "bronze.kafka_orders",
        rows_in=5,
        rows_written=4,
        rows_quarantined=1,
    )


def test_bronze_rows_are_typed_with_the_bad_amount_rescued(
    spark: SparkSession, kafka_day: KafkaDay
) -> None:
    sent = datetime(2026, 11, 26, 17, 19, 34, 625000, tzinfo=UTC)
    event_ts = datetime(2026, 11, 25, 0, 0, 16, tzinfo=UTC)
    meta = (kafka_day.source_file, LANDED_AT, RUN_ID, D2)

    def row(offset: int, amount: Decimal | None, rescued: dict[str, str] | None) -> tuple[Any, ...]:
        key = f"ord_{offset:08d}"
        return (key, "cust_0002758", amount, "CAD", event_ts, "c", 0, offset, sent, key, rescued)

    expected = local_frame(
        spark,
        [
            (*row(10432, Decimal("61.56"), None), *meta),
            (*row(10507, None, {"order_amount": "18,76"}), *meta),
            (*row(10528, Decimal("61.56"), None), *meta),
            (*row(10529, Decimal("61.56"), None), *meta),
        ],
        "order_id STRING, customer_id STRING, order_amount DECIMAL(18,2), currency STRING, "
        "event_ts TIMESTAMP, op STRING, kafka_partition INT, kafka_offset BIGINT, "
        f"kafka_timestamp TIMESTAMP, kafka_key STRING, {METADATA_DDL}",
    )
    bronze = kafka_day.lakehouse(spark).read("bronze.kafka_orders")
    assertDataFrameEqual(bronze, expected, checkRowOrder=False)


def test_unknown_fields_are_kept_with_the_key_and_logged_as_drift(
    spark: SparkSession, kafka_day: KafkaDay
) -> None:
    unknown = kafka_day.lakehouse(spark).read("bronze.kafka_orders_unknown_columns")

    expected = local_frame(
        spark,
        [
            (0, 10528, {"_debug_flag": "true"}, kafka_day.source_file, D2, RUN_ID),
            (
                0,
                10529,
                {"_debug_flag": "true", "_trace": '{"span":"a1"}'},
                kafka_day.source_file,
                D2,
                RUN_ID,
            ),
        ],
        "kafka_partition INT, kafka_offset BIGINT, _unknown_columns MAP<STRING,STRING>, "
        "_source_file STRING, _proc_date DATE, _run_id STRING",
    )
    assertDataFrameEqual(unknown, expected, checkRowOrder=False)
    drift = kafka_day.root / "_schema_drift" / "dt=2026-11-25" / "kafka_orders.json"
    assert json.loads(drift.read_text()) == {
        "table": "bronze.kafka_orders",
        "contract_version": 1,
        "contract_file": "kafka_orders.schema.json",
        "proc_date": "2026-11-25",
        "load": "raw/kafka/orders/load_dt=2026-11-25",
        "records": 4,
        "unknown_fields": [
            {"field": "_debug_flag", "record_count": 2, "first_seen_file": kafka_day.source_file},
            {"field": "_trace", "record_count": 1, "first_seen_file": kafka_day.source_file},
        ],
    }


def test_a_line_that_is_not_a_json_object_is_quarantined(
    spark: SparkSession, kafka_day: KafkaDay
) -> None:
    quarantine = kafka_day.lakehouse(spark).read("bronze.kafka_orders_quarantine")

    rule = [("record_is_json_object", "from_json(_raw_record, 'MAP<STRING,STRING>') IS NOT NULL")]
    expected = local_frame(
        spark,
        [(CUT_OFF, rule, kafka_day.source_file, D2, RUN_ID)],
        "_raw_record STRING, _errors ARRAY<STRUCT<name: STRING, expression: STRING>>, "
        "_source_file STRING, _proc_date DATE, _run_id STRING",
    )
    assertDataFrameEqual(quarantine, expected)


def test_rerunning_a_day_leaves_every_table_and_the_drift_log_identical(
    spark: SparkSession, kafka_day: KafkaDay
) -> None:
    lakehouse = kafka_day.lakehouse(spark)
    drift = kafka_day.root / "_schema_drift" / "dt=2026-11-25" / "kafka_orders.json"
    before = {table: lakehouse.read(table).collect() for table in KAFKA_TABLES}
    versions = {table: table_version(lakehouse, table) for table in KAFKA_TABLES}
    drift_before = drift.read_text()

    # Another job run: partitions that would not change are not rewritten (and keep their run id).
    again = load_bronze(lakehouse, "bronze.kafka_orders", D2, run_id="run-0043")

    assert again == kafka_day.result
    for table in KAFKA_TABLES:
        assertDataFrameEqual(lakehouse.read(table), before[table], checkRowOrder=False)
        assert table_version(lakehouse, table) == versions[table]
    assert drift.read_text() == drift_before


def test_a_relanded_day_replaces_its_partitions_and_clears_stale_drift(
    spark: SparkSession, kafka_day: KafkaDay, tmp_path: Path
) -> None:
    lakehouse = kafka_day.copied(spark, tmp_path / "root")
    manifest = land_records(
        lakehouse.raw_root, "kafka", "orders", D2, [kafka_event(10432)], now=LANDED_AT
    )

    result = load_bronze(lakehouse, "kafka_orders", D2, run_id="run-0043")

    assert result == StepResult("load_bronze_kafka_orders", "bronze.kafka_orders", 1, 1)
    file = f"raw/kafka/orders/load_dt=2026-11-25/{manifest.files[0].name}"
    assert lakehouse.read("bronze.kafka_orders").select(
        "kafka_offset", "_source_file", "_run_id"
    ).collect() == [Row(kafka_offset=10432, _source_file=file, _run_id="run-0043")]
    assert lakehouse.read("bronze.kafka_orders_unknown_columns").count() == 0
    assert lakehouse.read("bronze.kafka_orders_quarantine").count() == 0
    assert not (lakehouse.storage_root / "_schema_drift/dt=2026-11-25/kafka_orders.json").exists()


def test_a_new_days_load_reads_only_the_partitions_the_step_wrote_before(
    spark: SparkSession, kafka_day: KafkaDay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lakehouse = with_day_3(spark, kafka_day, tmp_path / "root",
                           kafka_event(10600), kafka_event(10601, _debug_flag=True))
    read: list[list[str]] = []  # the tables whose partition each load read, load by load
    occupied = bronze_step._occupied

    def recorded(house: Lakehouse, run_date: date, writes: Any) -> set[str]:
        read.append([write.table for write in writes])
        return occupied(house, run_date, writes)

    monkeypatch.setattr(bronze_step, "_occupied", recorded)

    first = load_bronze(lakehouse, "kafka_orders", D3, run_id="run-0050")
    # known empty, the partition is appended to: no files of the table to find and remove
    assert last_commit(lakehouse, "bronze.kafka_orders")["operationParameters"]["mode"] == "Append"
    again = load_bronze(lakehouse, "kafka_orders", D3, run_id="run-0051")

    # D3 has a row with an unknown field and no bad line: its quarantine partition is never
    # written, so the re-run reads the two partitions D3 wrote, and no other.
    assert read == [[], ["bronze.kafka_orders", "bronze.kafka_orders_unknown_columns"]]
    assert first == again == StepResult("load_bronze_kafka_orders", "bronze.kafka_orders", 2, 2)
    assert day_3_rows(lakehouse) == [Row(kafka_offset=10600, _run_id="run-0050"),
                                     Row(kafka_offset=10601, _run_id="run-0050")]


def test_of_two_runs_that_find_a_new_partition_empty_the_later_writer_replaces_it(
    spark: SparkSession, kafka_day: KafkaDay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lakehouse = with_day_3(spark, kafka_day, tmp_path / "root",
                           kafka_event(10600), kafka_event(10601))
    occupied = bronze_step._occupied
    other_runs: list[StepResult] = []

    def another_run_meanwhile(house: Lakehouse, run_date: date, writes: Any) -> set[str]:
        found = occupied(house, run_date, writes)  # this run found the partition empty ...
        if not other_runs:  # ... and another run loads the same day before it writes
            monkeypatch.setattr(bronze_step, "_occupied", occupied)
            other_runs.append(load_bronze(house, "kafka_orders", D3, run_id="run-other"))
        return found

    monkeypatch.setattr(bronze_step, "_occupied", another_run_meanwhile)

    result = load_bronze(lakehouse, "kafka_orders", D3, run_id="run-0050")

    assert other_runs == [result] == [StepResult("load_bronze_kafka_orders",
                                                 "bronze.kafka_orders", 2, 2)]
    assert day_3_rows(lakehouse) == [Row(kafka_offset=10600, _run_id="run-0050"),
                                     Row(kafka_offset=10601, _run_id="run-0050")]


def test_a_table_the_record_does_not_cover_has_its_partition_replaced(
    spark: SparkSession, kafka_day: KafkaDay, tmp_path: Path
) -> None:
    """A table made before the step kept its record (or by hand): a relanded day without bad
    lines still clears the quarantine rows its first load left."""
    lakehouse = kafka_day.copied(spark, tmp_path / "root")
    record = bronze_step.WrittenPartitions.of(lakehouse.storage_root,
                                              "bronze.kafka_orders_quarantine")
    shutil.rmtree(record.root)
    land_records(lakehouse.raw_root, "kafka", "orders", D2, [kafka_event(10432)], now=LANDED_AT)

    load_bronze(lakehouse, "kafka_orders", D2, run_id="run-0043")

    assert lakehouse.read("bronze.kafka_orders_quarantine").count() == 0
    assert record.may_hold_rows(D2)  # still not covered: the table was not created here


def table_version(lakehouse: Lakehouse, table: str) -> int:
    """The Delta version of a table (a rewrite adds one, even of identical rows)."""
    return int(last_commit(lakehouse, table)["version"])


def last_commit(lakehouse: Lakehouse, table: str) -> Row:
    """The table's latest commit, as ``DESCRIBE HISTORY`` shows it."""
    return lakehouse.spark.sql(f"DESCRIBE HISTORY {lakehouse.name(table)} LIMIT 1").collect()[0]


def test_a_day_without_a_complete_load_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))

    with pytest.raises(
        RawLoadError, match=r"no complete load at .*/raw/crm/accounts/load_dt=2026-11-25"
    ):
        load_bronze(lakehouse, "crm_accounts", D2, run_id=RUN_ID)


def test_a_last_record_without_a_final_newline_is_counted_and_loaded(
    spark: SparkSession, tmp_path: Path
) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    lines = [json_line(kafka_event(offset)) for offset in (1, 2, 3)]
    landed = land_lines(lakehouse.raw_root, "kafka", "orders", D2, lines, final_newline=False)
    assert not landed.data_paths[0].read_bytes().endswith(b"\n")

    assert read_manifest(landed.load_dir).row_count == 3  # the file's count agrees: 3 lines
    result = load_bronze(lakehouse, "kafka_orders", D2, run_id=RUN_ID)

    assert (result.rows_in, result.rows_written, result.rows_quarantined) == (3, 3, 0)
    offsets = [row["kafka_offset"] for row in lakehouse.read("bronze.kafka_orders").collect()]
    assert sorted(offsets) == [1, 2, 3]


def test_counts_that_do_not_add_up_to_the_manifest_are_refused(tmp_path: Path) -> None:
    manifest = land_lines(tmp_path / "raw", "fx_rates", None, D2, ["{}"] * 10)

    check_row_counts("bronze.fx_rates", manifest, 9, 1)
    with pytest.raises(
        RawLoadError,
        match=r"bronze.fx_rates: expected the 10 rows of .*/raw/fx_rates/load_dt=2026-11-25 "
        r"\(manifest row_count\), found 9 \(8 bronze rows \+ 1 quarantined lines\)",
    ):
        check_row_counts("bronze.fx_rates", manifest, 8, 1)


def order(order_id: str, amount: str) -> dict[str, Any]:
    """A Snowflake order as landed."""
    return {
        "order_id": order_id,
        "customer_id": "cust_0004021",
        "order_ts": "2026-11-24T04:46:22+00:00",
        "status": "shipped",
        "currency": "EUR",
        "order_amount": amount,
        "updated_at": "2026-11-25T21:42:08+00:00",
    }


def test_a_contract_break_fails_before_anything_is_written(
    spark: SparkSession, tmp_path: Path
) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    records = [order("ord_1", "18,76"), order("ord_2", "22,67")]
    land_records(lakehouse.raw_root, "snowflake", "orders", D2, records)

    with pytest.raises(
        ContractViolation,
        match=r"^bronze.snowflake_orders \(contract v1\): column order_amount expected "
        r"decimal\(18,2\), but all 2 non-null values of raw/snowflake/orders/load_dt=2026-11-25 "
        r"fail to cast, e.g. '18,76', '22,67'$",
    ):
        load_bronze(lakehouse, "snowflake_orders", D2, run_id=RUN_ID)
    assert not lakehouse.exists("bronze.snowflake_orders")


def test_on_a_cluster_the_kept_load_is_released_whether_it_is_written_or_refused(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept: list[tuple[DataFrame, StorageLevel]] = []

    @contextmanager
    def recorded(frame: DataFrame, *, keep: bool = True) -> Iterator[DataFrame]:
        with computed_once(frame, keep=keep) as persisted:
            kept.append((persisted, persisted.storageLevel))
            yield persisted

    monkeypatch.setattr(bronze_step, "computed_once", recorded)
    monkeypatch.setattr(spark_module, "is_local_master", lambda _spark: False)  # persisted
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    land_records(lakehouse.raw_root, "snowflake", "orders", D1, [order("ord_1", "18.76")])
    land_records(lakehouse.raw_root, "snowflake", "orders", D2, [order("ord_2", "18,76")])

    load_bronze(lakehouse, "snowflake_orders", D1, run_id=RUN_ID)
    with pytest.raises(ContractViolation):
        load_bronze(lakehouse, "snowflake_orders", D2, run_id=RUN_ID)

    # each load kept its parsed lines for its actions, and let them go after
    assert [level for _, level in kept] == [StorageLevel.MEMORY_AND_DISK] * 2
    assert [frame.storageLevel for frame, _ in kept] == [StorageLevel.NONE] * 2
    assert lakehouse.read("bronze.snowflake_orders").count() == 1


def test_fewer_rows_than_min_rows_fail_before_anything_is_written(
    spark: SparkSession, tmp_path: Path
) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    land_records(lakehouse.raw_root, "snowflake", "orders", D2, [order("ord_1", "18.76")])

    with pytest.raises(
        ExpectationFailed,
        match=r"bronze.snowflake_orders _proc_date=2026-11-25: expected at least 2 rows "
        r"\(min_rows\), found 1 in raw/snowflake/orders/load_dt=2026-11-25",
    ):
        load_bronze(lakehouse, "snowflake_orders", D2, run_id=RUN_ID, min_rows=2)
    assert not lakehouse.exists("bronze.snowflake_orders")


def behavior(event_id: str, **v2: str) -> dict[str, Any]:
    """A behavior event as landed; v2 events carry referrer and app_version."""
    return {
        "event_id": event_id,
        "session_id": "sess_aef9f3a9558ffa81",
        "customer_id": "cust_0001195",
        "event_type": "page_view",
        "event_ts": "2026-11-25T00:00:02+00:00",
        "page": "/sale",
        "device": "desktop",
        **v2,
    }


def test_an_additive_contract_change_adds_columns_to_the_table(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A config where v1 is still the latest behavior contract, as before v2 was published.
    config = tmp_path / "config"
    shutil.copytree(config_dir(), config)  # the bronze tables are its specs, the contracts beside
    contracts = config / "schema_definitions" / "bronze"
    (contracts / "customer_behavior_v2.schema.json").unlink()
    shutil.copy(
        contracts / "customer_behavior_v1.schema.json", contracts / "customer_behavior.schema.json"
    )
    monkeypatch.setenv("MEDALLION_CONFIG_DIR", str(config))
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path / "root"))
    raw = lakehouse.raw_root
    day1 = land_records(raw, "redshift", "behavior", D1, [behavior("evt_1")], now=LANDED_AT)
    load_bronze(lakehouse, "customer_behavior", D1, run_id=RUN_ID)
    monkeypatch.delenv("MEDALLION_CONFIG_DIR")  # v2 published
    v2 = behavior("evt_2", referrer="direct", app_version="web-2026.10")
    day2 = land_records(raw, "redshift", "behavior", D2, [v2], now=LANDED_AT)

    result = load_bronze(lakehouse, "customer_behavior", D2, run_id=RUN_ID)

    assert result == StepResult("load_bronze_customer_behavior", "bronze.customer_behavior", 1, 1)
    common = ("sess_aef9f3a9558ffa81", "cust_0001195", "page_view",
              datetime(2026, 11, 25, 0, 0, 2, tzinfo=UTC), "/sale", "desktop", None)  # fmt: skip
    file1 = f"raw/redshift/behavior/load_dt=2026-11-24/{day1.files[0].name}"
    file2 = f"raw/redshift/behavior/load_dt=2026-11-25/{day2.files[0].name}"
    expected = local_frame(
        spark,
        [
            ("evt_1", *common, file1, LANDED_AT, RUN_ID, D1, None, None),
            ("evt_2", *common, file2, LANDED_AT, RUN_ID, D2, "direct", "web-2026.10"),
        ],
        "event_id STRING, session_id STRING, customer_id STRING, event_type STRING, "
        f"event_ts TIMESTAMP, page STRING, device STRING, {METADATA_DDL}, referrer STRING, "
        "app_version STRING",
    )
    assertDataFrameEqual(lakehouse.read("bronze.customer_behavior"), expected, checkRowOrder=False)


def test_a_table_of_an_older_incompatible_shape_is_refused(
    spark: SparkSession, tmp_path: Path
) -> None:
    # bronze.fx_rates as the FX slice wrote it before contracts: every raw field a string.
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    old = local_frame(
        spark,
        [("2026-11-24", "USD", "EUR", "0.92", None, "file:/raw/a.jsonl", LANDED_AT, D1)],
        "date STRING, base STRING, currency STRING, rate STRING, _corrupt_record STRING, "
        "_source_file STRING, _ingest_ts TIMESTAMP, _proc_date DATE",
    )
    lakehouse.write(old, "bronze.fx_rates", partition_by=["_proc_date"])
    rates = [{"date": "2026-11-25", "base": "USD", "currency": "EUR", "rate": 0.916832}]
    land_records(lakehouse.raw_root, "fx_rates", None, D2, rates)

    with pytest.raises(
        ContractViolation,
        match=r"bronze.fx_rates: expected the existing table's column types to match the "
        r"contract; rate is string in the table, decimal\(18,8\) now\. A breaking contract change "
        r"needs a new table: drop bronze.fx_rates and backfill it from raw",
    ):
        load_bronze(lakehouse, "fx_rates", D2, run_id=RUN_ID)
    assert lakehouse.read("bronze.fx_rates").collect() == old.collect()
