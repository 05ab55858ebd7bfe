"""Raw lines -> bronze frames, per source, on real-looking records from the raw samples."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.contracts import load_contract
from medallion.lakehouse.contracts.conform import parse_json_lines
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.bronze import to_bronze, to_quarantine, to_unknown_columns
from tests.lakehouse.pipelines.bronze.conftest import LANDED_AT, METADATA_DDL, RUN_ID, lines_of

D = date(2026, 11, 25)


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def bronze_of(spark: SparkSession, entity: str, source_file: str, *lines: str) -> DataFrame:
    parsed = parse_json_lines(lines_of(spark, source_file, *lines))
    contract = load_contract("bronze", entity)
    return to_bronze(parsed, contract, ingest_ts=LANDED_AT, proc_date=D, run_id=RUN_ID)


def test_snowflake_orders(spark: SparkSession) -> None:
    file = "raw/snowflake/orders/load_dt=2026-11-25/part-00000-caedc4513bebd108.jsonl"
    bronze = bronze_of(
        spark,
        "snowflake_orders",
        file,
        '{"order_id":"ord_00000001","customer_id":"cust_0004021","order_ts":"2026-11-24T04:46:22'
        '+00:00","status":"shipped","currency":"EUR","order_amount":"18.76","updated_at":'
        '"2026-11-25T21:42:08+00:00"}',
        '{"order_id":"ord_103000000","customer_id":"cust_0002274","order_ts":"2026-11-24T11:30:46'
        '+00:00","status":"shipped","currency":"GBP","order_amount":"24,96","updated_at":'
        '"2026-11-25T17:44:57+00:00"}',
        '{"order_id":null,"customer_id":"cust_0000520","order_ts":"2026-11-24T06:35:09+00:00",'
        '"status":"cancelled","currency":"INR","order_amount":"-6262.51","updated_at":'
        '"2026-11-25T09:35:09+00:00"}',
    )

    meta = (file, LANDED_AT, RUN_ID, D)
    expected = local_frame(
        spark,
        [
            (
                "ord_00000001",
                "cust_0004021",
                utc(2026, 11, 24, 4, 46, 22),
                "shipped",
                "EUR",
                Decimal("18.76"),
                utc(2026, 11, 25, 21, 42, 8),
                None,
                *meta,
            ),
            (
                "ord_103000000",
                "cust_0002274",
                utc(2026, 11, 24, 11, 30, 46),
                "shipped",
                "GBP",
                None,
                utc(2026, 11, 25, 17, 44, 57),
                {"order_amount": "24,96"},
                *meta,
            ),
            (
                None,
                "cust_0000520",
                utc(2026, 11, 24, 6, 35, 9),
                "cancelled",
                "INR",
                Decimal("-6262.51"),
                utc(2026, 11, 25, 9, 35, 9),
                None,
                *meta,
            ),
        ],
        "order_id STRING, customer_id STRING, order_ts TIMESTAMP, status STRING, currency STRING, "
        f"order_amount DECIMAL(18,2), updated_at TIMESTAMP, {METADATA_DDL}",
    )
    assertDataFrameEqual(bronze, expected, checkRowOrder=False)


def test_kafka_orders(spark: SparkSession) -> None:
    file = "raw/kafka/orders/load_dt=2026-11-25/part-00000-e87fd1045aa0954c.jsonl"
    bronze = bronze_of(
        spark,
        "kafka_orders",
        file,
        '{"amount":61.56,"currency":"CAD","customer_id":"cust_0002758","event_ts":"2026-11-25T00:'
        '00:16+00:00","op":"c","order_id":"ord_00018645","_kafka_partition":0,"_kafka_offset":'
        '10432,"_kafka_timestamp":1795713574625,"_kafka_key":"ord_00018645"}',
        '{"amount":"35,99","currency":"CAD","customer_id":"cust_0003737","event_ts":"2026-11-25T00'
        ':09:26+00:00","op":"c","order_id":"ord_203000161","_kafka_partition":0,"_kafka_offset":'
        '10507,"_kafka_timestamp":1795713574628,"_kafka_key":"ord_203000161"}',
        '{"_debug_flag":true,"amount":10471.64,"currency":"JPY","customer_id":"cust_0002990",'
        '"event_ts":"2026-11-25T00:11:49+00:00","op":"c","order_id":"ord_207000007",'
        '"_kafka_partition":0,"_kafka_offset":10528,"_kafka_timestamp":1795713574628,'
        '"_kafka_key":"ord_207000007"}',
        '{"amount":28.97,"currency":"EUR","customer_id":"cust_0000985","event_ts":"2026-11-25T00:'
        '02:37+00:00","op":"u","order_id":null,"_kafka_partition":0,"_kafka_offset":10451,'
        '"_kafka_timestamp":1795713574626,"_kafka_key":null}',
    )

    meta = (file, LANDED_AT, RUN_ID, D)
    expected = local_frame(
        spark,
        [
            (
                "ord_00018645",
                "cust_0002758",
                Decimal("61.56"),
                "CAD",
                utc(2026, 11, 25, 0, 0, 16),
                "c",
                0,
                10432,
                datetime(2026, 11, 26, 17, 19, 34, 625000, tzinfo=UTC),
                "ord_00018645",
                None,
                *meta,
            ),
            (
                "ord_203000161",
                "cust_0003737",
                None,
                "CAD",
                utc(2026, 11, 25, 0, 9, 26),
                "c",
                0,
                10507,
                datetime(2026, 11, 26, 17, 19, 34, 628000, tzinfo=UTC),
                "ord_203000161",
                {"order_amount": "35,99"},
                *meta,
            ),
            (
                "ord_207000007",
                "cust_0002990",
                Decimal("10471.64"),
                "JPY",
                utc(2026, 11, 25, 0, 11, 49),
                "c",
                0,
                10528,
                datetime(2026, 11, 26, 17, 19, 34, 628000, tzinfo=UTC),
                "ord_207000007",
                None,
                *meta,
            ),
            (
                None,
                "cust_0000985",
                Decimal("28.97"),
                "EUR",
                utc(2026, 11, 25, 0, 2, 37),
                "u",
                0,
                10451,
                datetime(2026, 11, 26, 17, 19, 34, 626000, tzinfo=UTC),
                None,
                None,
                *meta,
            ),
        ],
        "order_id STRING, customer_id STRING, order_amount DECIMAL(18,2), currency STRING, "
        "event_ts TIMESTAMP, op STRING, kafka_partition INT, kafka_offset BIGINT, "
        f"kafka_timestamp TIMESTAMP, kafka_key STRING, {METADATA_DDL}",
    )
    assertDataFrameEqual(bronze, expected, checkRowOrder=False)


def test_customer_behavior(spark: SparkSession) -> None:
    file = "raw/redshift/behavior/load_dt=2026-11-25/part-00000-b9e4a50104f29be2.jsonl"
    bronze = bronze_of(
        spark,
        "customer_behavior",
        file,
        '{"event_id":"evt_000098531","session_id":"sess_aef9f3a9558ffa81","customer_id":'
        '"cust_0001195","event_type":"page_view","event_ts":"2026-11-25T00:00:02+00:00","page":'
        '"/sale","device":"desktop","referrer":"direct","app_version":"web-2026.10",'
        '"_debug_flag":null}',
        '{"event_id":"evt_1070000165","session_id":"sess_0d972bfe9577d037","customer_id":'
        '"cust_0004486","event_type":"page_view","event_ts":"2026-11-25T00:01:09+00:00","page":'
        '"/sale","device":"mobile","referrer":"partner","app_version":"web-2026.10",'
        '"_debug_flag":"true"}',
        '{"event_id":"evt_000021509","session_id":"sess_995f8979a1609eb7","customer_id":'
        '"cust_0001950","event_type":"page_view","event_ts":"2026-11-24T00:00:17+00:00","page":'
        '"/","device":"mobile","referrer":null,"app_version":null}',
    )

    meta = (None, file, LANDED_AT, RUN_ID, D)
    expected = local_frame(
        spark,
        [
            (
                "evt_000098531",
                "sess_aef9f3a9558ffa81",
                "cust_0001195",
                "page_view",
                utc(2026, 11, 25, 0, 0, 2),
                "/sale",
                "desktop",
                "direct",
                "web-2026.10",
                *meta,
            ),
            (
                "evt_1070000165",
                "sess_0d972bfe9577d037",
                "cust_0004486",
                "page_view",
                utc(2026, 11, 25, 0, 1, 9),
                "/sale",
                "mobile",
                "partner",
                "web-2026.10",
                *meta,
            ),
            (
                "evt_000021509",
                "sess_995f8979a1609eb7",
                "cust_0001950",
                "page_view",
                utc(2026, 11, 24, 0, 0, 17),
                "/",
                "mobile",
                None,
                None,
                *meta,
            ),
        ],
        "event_id STRING, session_id STRING, customer_id STRING, event_type STRING, "
        "event_ts TIMESTAMP, page STRING, device STRING, referrer STRING, app_version STRING, "
        f"{METADATA_DDL}",
    )
    assertDataFrameEqual(bronze, expected, checkRowOrder=False)


def test_crm_accounts(spark: SparkSession) -> None:
    file = "raw/crm/accounts/load_dt=2026-11-25/part-00000-2b6519f10f96a93d.jsonl"
    bronze = bronze_of(
        spark,
        "crm_accounts",
        file,
        '{"customer_id":"cust_0004491","name":"Jade Kowalski","email":"jade.kowalski4491@inbox.'
        'example","phone":"+1 312 2450855","country":"US","lifecycle_stage":"lead",'
        '"last_modified_date":"2026-11-22T01:12:02.000Z"}',
        '{"customer_id":"cust_0004493","name":"Yara Patel","email":"yara.patel4493@example.com",'
        '"phone":"+33 711 2265667","country":"FR","lifecycle_stage":"unknown",'
        '"last_modified_date":"2026-11-22T11:28:53.250Z"}',
    )

    meta = (None, file, LANDED_AT, RUN_ID, D)
    expected = local_frame(
        spark,
        [
            (
                "cust_0004491",
                "Jade Kowalski",
                "jade.kowalski4491@inbox.example",
                "+1 312 2450855",
                "US",
                "lead",
                utc(2026, 11, 22, 1, 12, 2),
                *meta,
            ),
            (
                "cust_0004493",
                "Yara Patel",
                "yara.patel4493@example.com",
                "+33 711 2265667",
                "FR",
                "unknown",
                datetime(2026, 11, 22, 11, 28, 53, 250000, tzinfo=UTC),
                *meta,
            ),
        ],
        "customer_id STRING, name STRING, email STRING, phone STRING, country STRING, "
        f"lifecycle_stage STRING, last_modified_date TIMESTAMP, {METADATA_DDL}",
    )
    assertDataFrameEqual(bronze, expected, checkRowOrder=False)


def test_fx_rates(spark: SparkSession) -> None:
    file = "raw/fx_rates/load_dt=2026-11-25/part-00000-cce2654e0ac7b705.jsonl"
    bronze = bronze_of(
        spark,
        "fx_rates",
        file,
        '{"date":"2026-11-25","base":"USD","currency":"USD","rate":1.0}',
        '{"date":"2026-11-25","base":"USD","currency":"EUR","rate":0.916832}',
        '{"date":"2026-11-25","base":"USD","currency":"JPY","rate":"abc"}',
        '{"date":"2026-02-30","base":"USD","currency":"GBP","rate":0.790006}',
    )

    meta = (file, LANDED_AT, RUN_ID, D)
    expected = local_frame(
        spark,
        [
            (D, "USD", "USD", Decimal("1.00000000"), None, *meta),
            (D, "USD", "EUR", Decimal("0.91683200"), None, *meta),
            (D, "USD", "JPY", None, {"rate": "abc"}, *meta),
            (None, "USD", "GBP", Decimal("0.79000600"), {"rate_date": "2026-02-30"}, *meta),
        ],
        f"rate_date DATE, base STRING, currency STRING, rate DECIMAL(18,8), {METADATA_DDL}",
    )
    assertDataFrameEqual(bronze, expected, checkRowOrder=False)


def test_unknown_fields_split_off_with_the_key(spark: SparkSession) -> None:
    file = "raw/kafka/orders/load_dt=2026-11-25/part-00000-e87fd1045aa0954c.jsonl"
    parsed = parse_json_lines(
        lines_of(
            spark,
            file,
            '{"_debug_flag":true,"amount":10471.64,"order_id":"ord_207000007",'
            '"_kafka_partition":0,"_kafka_offset":10528,"_trace":{"span":"a1"}}',
            '{"_debug_flag":null,"amount":61.56,"order_id":"ord_00018645","_kafka_partition":0,'
            '"_kafka_offset":10432}',
            "not json",
        )
    )

    unknown = to_unknown_columns(
        parsed, load_contract("bronze", "kafka_orders"), proc_date=D, run_id=RUN_ID
    )

    expected = local_frame(
        spark,
        [(0, 10528, {"_debug_flag": "true", "_trace": '{"span":"a1"}'}, file, D, RUN_ID)],
        "kafka_partition INT, kafka_offset BIGINT, _unknown_columns MAP<STRING,STRING>, "
        "_source_file STRING, _proc_date DATE, _run_id STRING",
    )
    assertDataFrameEqual(unknown, expected)


def test_lines_that_are_not_json_objects_are_quarantined_whole(spark: SparkSession) -> None:
    file = "raw/crm/accounts/load_dt=2026-11-25/part-00000-2b6519f10f96a93d.jsonl"
    parsed = parse_json_lines(
        lines_of(spark, file, '{"customer_id":"cust_1"}', '{"customer_id":"cust_2"', "[1]", "")
    )

    quarantine = to_quarantine(parsed, proc_date=D, run_id=RUN_ID)

    rule = [("record_is_json_object", "from_json(_raw_record, 'MAP<STRING,STRING>') IS NOT NULL")]
    expected = local_frame(
        spark,
        [(line, rule, file, D, RUN_ID) for line in ('{"customer_id":"cust_2"', "[1]", "")],
        "_raw_record STRING, _errors ARRAY<STRUCT<name: STRING, expression: STRING>>, "
        "_source_file STRING, _proc_date DATE, _run_id STRING",
    )
    assertDataFrameEqual(quarantine, expected, checkRowOrder=False)
