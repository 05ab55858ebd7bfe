"""Conforming raw JSON lines to a contract: parsing, typing, rescue, unknown fields, breaks."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.contracts import load_contract
from medallion.lakehouse.contracts.conform import (
    RAW_RECORD,
    RECORD,
    SOURCE_FILE,
    check_contract,
    conform_lines,
    conform_to_contract,
    json_objects,
    pack_lines,
    parse_json_lines,
    profile_load,
    read_profile,
    unpack_lines,
)
from medallion.lakehouse.errors import ContractViolation
from medallion.lakehouse.spark import local_frame

FILE = "raw/snowflake/orders/load_dt=2026-11-25/part-00000-caedc4513bebd108.jsonl"
LOAD = "raw/snowflake/orders/load_dt=2026-11-25"
BEHAVIOR_V1 = (
    "event_id STRING, session_id STRING, customer_id STRING, event_type STRING, "
    "event_ts TIMESTAMP, page STRING, device STRING"
)
CONFORMED_TAIL = "_rescued_data MAP<STRING,STRING>, _unknown_columns MAP<STRING,STRING>, " + (
    "_source_file STRING"
)
T0 = datetime(2026, 11, 25, 0, 0, 2, tzinfo=UTC)
ABSENT = object()
"""A field value meaning: leave the field out of the record."""


def lines_of(spark: SparkSession, *lines: str) -> DataFrame:
    """Raw lines as the bronze reader hands them over: scanned, as a file is, not a local relation
    (Spark's optimizer evaluates a projection of a local relation itself, so a plan of the
    parse would show no parse at all)."""
    return spark.createDataFrame(
        [(line, FILE) for line in lines], "value STRING, _source_file STRING"
    )


def order(**changes: object) -> str:
    """A Snowflake order line as landed, with ``changes`` (``ABSENT`` removes a field)."""
    record: dict[str, object] = {
        "order_id": "ord_00000001",
        "customer_id": "cust_0004021",
        "order_ts": "2026-11-24T04:46:22+00:00",
        "status": "shipped",
        "currency": "EUR",
        "order_amount": "18.76",
        "updated_at": "2026-11-25T21:42:08+00:00",
    }
    for key, value in changes.items():
        if value is ABSENT:
            del record[key]
        else:
            record[key] = value
    return json.dumps(record, separators=(",", ":"))


def test_from_json_keeps_each_value_as_raw_text_and_nulls_what_is_not_an_object(
    spark: SparkSession,
) -> None:
    lines = lines_of(
        spark,
        '{"s":"18,76","n":61.56,"i":1795713574625,"b":true,"z":null,"o":{"a":[1,"x"]}}',
        "[1,2]",
        '"just a string"',
        "not json",
        "",
        "{}",
    )

    parsed = parse_json_lines(lines)

    expected = local_frame(
        spark,
        [
            (
                '{"s":"18,76","n":61.56,"i":1795713574625,"b":true,"z":null,"o":{"a":[1,"x"]}}',
                {
                    "s": "18,76",
                    "n": "61.56",
                    "i": "1795713574625",
                    "b": "true",
                    "z": None,
                    "o": '{"a":[1,"x"]}',
                },
                FILE,
            ),
            ("[1,2]", None, FILE),
            ('"just a string"', None, FILE),
            ("not json", None, FILE),
            ("", None, FILE),
            ("{}", {}, FILE),
        ],
        "_raw_record STRING, _record MAP<STRING,STRING>, _source_file STRING",
    )
    assertDataFrameEqual(parsed, expected, checkRowOrder=False)


def test_json_objects_keeps_the_records_and_parses_each_line_once(spark: SparkSession) -> None:
    lines = lines_of(spark, '{"a":"1"}', "[1,2]", "not json", "{}")

    records = json_objects(parse_json_lines(lines)).select(
        RAW_RECORD, sf.col(RECORD).getItem("a").alias("a"), SOURCE_FILE
    )

    expected = local_frame(
        spark,
        [('{"a":"1"}', "1", FILE), ("{}", None, FILE)],
        "_raw_record STRING, a STRING, _source_file STRING",
    )
    assertDataFrameEqual(records, expected, checkRowOrder=False)
    with contextlib.redirect_stdout(io.StringIO()) as physical_plan:
        records.explain()
    assert physical_plan.getvalue().count("from_json(") == 1, physical_plan.getvalue()


def test_values_that_do_not_cast_are_null_with_their_text_rescued(spark: SparkSession) -> None:
    contract = load_contract("bronze", "snowflake_orders")
    lines = lines_of(
        spark,
        order(),
        order(order_id="ord_103000000", order_amount="18,76"),
        order(order_id="ord_103000001", order_ts="yesterday", order_amount=ABSENT),
    )

    conformed = conform_to_contract(parse_json_lines(lines), contract)

    ts = datetime(2026, 11, 24, 4, 46, 22, tzinfo=UTC)
    updated = datetime(2026, 11, 25, 21, 42, 8, tzinfo=UTC)
    expected = local_frame(
        spark,
        [
            (
                "ord_00000001",
                "cust_0004021",
                ts,
                "shipped",
                "EUR",
                Decimal("18.76"),
                updated,
                None,
                {},
                FILE,
            ),
            (
                "ord_103000000",
                "cust_0004021",
                ts,
                "shipped",
                "EUR",
                None,
                updated,
                {"order_amount": "18,76"},
                {},
                FILE,
            ),
            (
                "ord_103000001",
                "cust_0004021",
                None,
                "shipped",
                "EUR",
                None,
                updated,
                {"order_ts": "yesterday"},
                {},
                FILE,
            ),
        ],
        "order_id STRING, customer_id STRING, order_ts TIMESTAMP, status STRING, currency STRING, "
        f"order_amount DECIMAL(18,2), updated_at TIMESTAMP, {CONFORMED_TAIL}",
    )
    assertDataFrameEqual(conformed, expected, checkRowOrder=False)


def behavior(event_id: str, **extra: object) -> str:
    """A behavior event line; v2 lines carry referrer and app_version in ``extra``."""
    record = {
        "event_id": event_id,
        "session_id": "sess_aef9f3a9558ffa81",
        "customer_id": "cust_0001195",
        "event_type": "page_view",
        "event_ts": "2026-11-25T00:00:02+00:00",
        "page": "/sale",
        "device": "desktop",
        **extra,
    }
    return json.dumps(record, separators=(",", ":"))


def test_v1_records_validate_against_v2_with_the_new_columns_null(spark: SparkSession) -> None:
    contract = load_contract("bronze", "customer_behavior")
    lines = lines_of(
        spark,
        behavior("evt_000000001"),
        behavior("evt_000098531", referrer="direct", app_version="web-2026.10", _debug_flag=None),
    )

    profile = read_profile(profile_load(parse_json_lines(lines), contract).collect()[0], contract)
    check_contract(contract, profile, LOAD)
    conformed = conform_to_contract(parse_json_lines(lines), contract)

    common = ("cust_0001195", "page_view", T0, "/sale", "desktop")
    expected = local_frame(
        spark,
        [
            ("evt_000000001", "sess_aef9f3a9558ffa81", *common, None, None, None, {}, FILE),
            (
                "evt_000098531",
                "sess_aef9f3a9558ffa81",
                *common,
                "direct",
                "web-2026.10",
                None,
                {},
                FILE,
            ),
        ],
        f"{BEHAVIOR_V1}, referrer STRING, app_version STRING, {CONFORMED_TAIL}",
    )
    assertDataFrameEqual(conformed, expected, checkRowOrder=False)


def test_v2_records_against_the_v1_contract_carry_the_new_fields_as_unknown(
    spark: SparkSession,
) -> None:
    contract = load_contract("bronze", "customer_behavior", 1)
    lines = lines_of(
        spark,
        behavior("evt_000098531", referrer="direct", app_version="web-2026.10"),
        behavior("evt_000000001"),
    )

    conformed = conform_to_contract(parse_json_lines(lines), contract)

    common = ("sess_aef9f3a9558ffa81", "cust_0001195", "page_view", T0, "/sale", "desktop")
    expected = local_frame(
        spark,
        [
            (
                "evt_000098531",
                *common,
                None,
                {"referrer": "direct", "app_version": "web-2026.10"},
                FILE,
            ),
            ("evt_000000001", *common, None, {}, FILE),
        ],
        f"{BEHAVIOR_V1}, {CONFORMED_TAIL}",
    )
    assertDataFrameEqual(conformed, expected, checkRowOrder=False)


def violation_of(spark: SparkSession, entity: str, *lines: str) -> str:
    """The ``ContractViolation`` message the load of ``lines`` raises."""
    contract = load_contract("bronze", entity)
    profile = read_profile(
        profile_load(parse_json_lines(lines_of(spark, *lines)), contract).collect()[0], contract
    )
    with pytest.raises(ContractViolation) as raised:
        check_contract(contract, profile, LOAD)
    return str(raised.value)


def test_a_required_column_absent_from_every_record_breaks_the_contract(
    spark: SparkSession,
) -> None:
    message = violation_of(
        spark, "snowflake_orders", order(status=ABSENT), order(status=ABSENT), "not json"
    )

    assert message == (
        "bronze.snowflake_orders (contract v1): column status expected present (required), but "
        f"absent from all 2 records of {LOAD}"
    )


def test_a_renamed_required_column_names_its_raw_field(spark: SparkSession) -> None:
    line = (
        '{"order_id":"ord_1","customer_id":"cust_1","order_amount":61.56,"currency":"CAD",'
        '"event_ts":"2026-11-25T00:00:16+00:00","op":"c","_kafka_partition":0,'
        '"_kafka_offset":10432,"_kafka_timestamp":1795713574625,"_kafka_key":"ord_1"}'
    )

    message = violation_of(spark, "kafka_orders", line)

    assert message == (
        "bronze.kafka_orders (contract v1): column order_amount (raw field amount) expected "
        f"present (required), but absent from all 1 records of {LOAD}"
    )


def test_a_column_whose_values_all_fail_to_cast_breaks_the_contract(spark: SparkSession) -> None:
    message = violation_of(
        spark,
        "snowflake_orders",
        order(order_amount="18,76"),
        order(order_amount="22,67"),
        order(order_amount="20,83"),
        order(order_amount=None),
        order(order_amount=ABSENT),
    )

    assert message == (
        "bronze.snowflake_orders (contract v1): column order_amount expected decimal(18,2), but "
        f"all 3 non-null values of {LOAD} fail to cast, e.g. '18,76', '22,67'"
    )


def test_every_break_of_a_load_is_named_in_one_message(spark: SparkSession) -> None:
    message = violation_of(
        spark, "snowflake_orders", order(order_ts="24/11/2026", updated_at=ABSENT)
    )

    assert message == (
        "bronze.snowflake_orders (contract v1): column order_ts expected timestamp, but all 1 "
        f"non-null values of {LOAD} fail to cast, e.g. '24/11/2026'; "
        "bronze.snowflake_orders (contract v1): column updated_at expected present (required), "
        f"but absent from all 1 records of {LOAD}"
    )


def test_scattered_bad_values_nulls_and_empty_loads_keep_the_contract(
    spark: SparkSession,
) -> None:
    contract = load_contract("bronze", "snowflake_orders")
    loads = [
        # dirt: a bad amount among good ones, a null key, a line that is not JSON
        (order(), order(order_amount="18,76"), order(order_id=None), "not json"),
        # a required column present but null in every record
        (order(status=None), order(status=None)),
        # nothing to judge: no record at all
        ("not json",),
        (),
    ]

    for lines in loads:
        profile = read_profile(
            profile_load(parse_json_lines(lines_of(spark, *lines)), contract).collect()[0],
            contract,
        )
        check_contract(contract, profile, LOAD)


def test_each_line_conforms_once_with_what_the_load_step_needs_and_survives_packing(
    spark: SparkSession,
) -> None:
    contract = load_contract("bronze", "snowflake_orders")
    lines = lines_of(
        spark,
        order(order_amount="18,76", status=None, _debug_flag=None, _trace="a1"),
        "not json",
    )

    conformed = conform_lines(parse_json_lines(lines), contract)
    unpacked = unpack_lines(pack_lines(conformed, contract))

    ts = datetime(2026, 11, 24, 4, 46, 22, tzinfo=UTC)
    updated = datetime(2026, 11, 25, 21, 42, 8, tzinfo=UTC)
    expected = local_frame(
        spark,
        [
            (
                "ord_00000001",
                "cust_0004021",
                ts,
                None,
                "EUR",
                None,
                updated,
                FILE,
                *[True] * 7,  # every field present, status too (as null)
                {"order_amount": "18,76"},
                {"_trace": "a1"},  # _debug_flag is null: no data, no drift
                None,  # a record's text is not kept
                True,
            ),
            (*[None] * 7, FILE, *[None] * 7, None, None, "not json", False),  # no record
        ],
        "order_id STRING, customer_id STRING, order_ts TIMESTAMP, status STRING, "
        "currency STRING, order_amount DECIMAL(18,2), updated_at TIMESTAMP, _source_file STRING, "
        + "".join(f"_present_{name} BOOLEAN, " for name in contract.column_names)
        + "_rescued_data MAP<STRING,STRING>, _unknown_columns MAP<STRING,STRING>, "
        "_raw_record STRING, _is_record BOOLEAN",
    )
    assertDataFrameEqual(conformed, expected, checkRowOrder=False)
    assert unpacked.schema == conformed.schema
    assertDataFrameEqual(unpacked, expected, checkRowOrder=False)
