"""The contract files: what they declare, and how a broken one is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from medallion.lakehouse.contracts import list_versions, load_contract, parse_spark_type
from medallion.lakehouse.errors import SpecError
from medallion.lakehouse.settings import config_dir

BRONZE_DIR = config_dir() / "schema_definitions" / "bronze"
ENTITIES = ("snowflake_orders", "kafka_orders", "customer_behavior", "crm_accounts", "fx_rates")


@pytest.mark.parametrize("entity", ENTITIES)
def test_latest_file_equals_the_highest_version(entity: str) -> None:
    versions = list_versions("bronze", entity)
    latest = BRONZE_DIR / f"{entity}.schema.json"
    highest = BRONZE_DIR / f"{entity}_v{versions[-1]}.schema.json"

    assert latest.read_bytes() == highest.read_bytes()
    assert load_contract("bronze", entity).version == versions[-1]


@pytest.mark.parametrize(
    ("entity", "ddl", "key", "renamed"),
    [
        (
            "snowflake_orders",
            "order_id STRING, customer_id STRING, order_ts TIMESTAMP, status STRING, "
            "currency STRING, order_amount DECIMAL(18,2), updated_at TIMESTAMP",
            ("order_id",),
            {},
        ),
        (
            "kafka_orders",
            "order_id STRING, customer_id STRING, order_amount DECIMAL(18,2), currency STRING, "
            "event_ts TIMESTAMP, op STRING, kafka_partition INT, kafka_offset BIGINT, "
            "kafka_timestamp TIMESTAMP, kafka_key STRING",
            ("kafka_partition", "kafka_offset"),
            {
                "order_amount": "amount",
                "kafka_partition": "_kafka_partition",
                "kafka_offset": "_kafka_offset",
                "kafka_timestamp": "_kafka_timestamp",
                "kafka_key": "_kafka_key",
            },
        ),
        (
            "customer_behavior",
            "event_id STRING, session_id STRING, customer_id STRING, event_type STRING, "
            "event_ts TIMESTAMP, page STRING, device STRING, referrer STRING, app_version STRING",
            ("event_id",),
            {},
        ),
        (
            "crm_accounts",
            "customer_id STRING, name STRING, email STRING, phone STRING, country STRING, "
            "lifecycle_stage STRING, last_modified_date TIMESTAMP",
            ("customer_id",),
            {},
        ),
        (
            "fx_rates",
            "rate_date DATE, base STRING, currency STRING, rate DECIMAL(18,8)",
            ("rate_date", "currency"),
            {"rate_date": "date"},
        ),
    ],
)
def test_latest_contract_declares_the_bronze_columns(
    entity: str, ddl: str, key: tuple[str, ...], renamed: dict[str, str]
) -> None:
    contract = load_contract("bronze", entity)

    assert contract.table == f"bronze.{entity}"
    declared = [(f.name, f.dataType.simpleString()) for f in contract.spark_schema.fields]
    assert declared == [
        (name, ddl_type.lower()) for name, ddl_type in (part.split(" ") for part in ddl.split(", "))
    ]
    assert contract.primary_key == key
    assert {c.name: c.source_name for c in contract.columns if c.name != c.source_name} == renamed


def test_kafka_timestamp_arrives_as_epoch_milliseconds() -> None:
    contract = load_contract("bronze", "kafka_orders")

    assert [c.name for c in contract.columns if c.source_format == "epoch_millis"] == [
        "kafka_timestamp"
    ]


def test_behavior_v2_adds_two_optional_columns_to_v1() -> None:
    v1 = load_contract("bronze", "customer_behavior", 1)
    v2 = load_contract("bronze", "customer_behavior", 2)

    assert list_versions("bronze", "customer_behavior") == [1, 2]
    assert v1.column_names == [
        "event_id", "session_id", "customer_id", "event_type", "event_ts", "page", "device",
    ]  # fmt: skip
    assert all(column.required for column in v1.columns)
    assert v2.column_names == [*v1.column_names, "referrer", "app_version"]
    assert [c.name for c in v2.columns if not c.required] == ["referrer", "app_version"]


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        ("decimal(18,2)", "decimal(18,2)"),
        ("DECIMAL( 18 , 8 )", "decimal(18,8)"),
        ("timestamp", "timestamp"),
        ("bigint", "bigint"),
        ("int", "int"),
        ("date", "date"),
    ],
)
def test_spark_types_parse_without_a_session(ddl: str, expected: str) -> None:
    assert parse_spark_type(ddl).simpleString() == expected


# --- a broken contract file is refused, naming the file and the key ---


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A private copy of the contract files, to break."""
    shutil.copytree(BRONZE_DIR, tmp_path / "schema_definitions" / "bronze")
    return tmp_path


def rewrite(config: Path, entity: str, change: dict[str, Any], *, versions: str = "both") -> Path:
    """Apply ``change`` (top-level keys; ``properties.<col>`` keys merge) to the latest contract."""
    directory = config / "schema_definitions" / "bronze"
    highest = max(list_versions("bronze", entity, config=config))
    paths = [directory / f"{entity}.schema.json", directory / f"{entity}_v{highest}.schema.json"]
    content = json.loads(paths[0].read_text())
    for key, value in change.items():
        if key.startswith("properties."):
            column = key.removeprefix("properties.")
            content["properties"][column] = {**content["properties"][column], **value}
        else:
            content[key] = value
    targets = paths if versions == "both" else paths[:1]
    for path in targets:
        path.write_text(json.dumps(content, indent=2))
    return paths[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"properties.rate": {"x-spark-type": "money"}},
            r"fx_rates\.schema\.json: key properties/rate/x-spark-type: expected a Spark SQL "
            r"atomic type .* found 'money'",
        ),
        (
            {"properties.rate": {"x-spark-type": "decimal(40,2)"}},
            r"key properties/rate/x-spark-type: expected decimal\(p,s\) with 1 <= p <= 38",
        ),
        (
            {"required": ["rate_date", "fx_rate"]},
            r"fx_rates\.schema\.json: key required: expected names of properties .*; found "
            r"fx_rate",
        ),
        (
            {"x-primary-key": ["rate_date", "ccy"]},
            r"key x-primary-key: expected names of properties .*; found ccy",
        ),
        ({"x-primary-key": []}, r"key x-primary-key: expected a non-empty list of column names"),
        ({"type": "array"}, r"key type: expected 'object', found 'array'"),
        ({"x-version": 2}, r"key x-version: expected 1 \(the file's version\), found 2"),
        ({"properties": {}}, r"key properties: expected a non-empty object of columns"),
        ({"required": "rate"}, r"key required: not a valid JSON Schema"),
        (
            {"properties.base": {"x-source-name": "date"}},
            r"key properties: expected each raw field once; date is the source of more than one",
        ),
        (
            {"properties.rate": {"x-source-format": "epoch_millis"}},
            r"key properties/rate/x-source-format: epoch_millis needs x-spark-type 'timestamp'",
        ),
    ],
)
def test_a_broken_contract_is_refused_naming_file_and_key(
    config: Path, change: dict[str, Any], message: str
) -> None:
    rewrite(config, "fx_rates", change)

    with pytest.raises(SpecError, match=message):
        load_contract("bronze", "fx_rates", config=config)


def test_a_property_without_a_spark_type_is_refused(config: Path) -> None:
    path = config / "schema_definitions" / "bronze" / "fx_rates.schema.json"
    content = json.loads(path.read_text())
    del content["properties"]["base"]["x-spark-type"]
    for name in ("fx_rates.schema.json", "fx_rates_v1.schema.json"):
        (path.parent / name).write_text(json.dumps(content))

    with pytest.raises(
        SpecError, match=r"key properties/base/x-spark-type: expected a Spark SQL type, found None"
    ):
        load_contract("bronze", "fx_rates", config=config)


def test_a_latest_file_that_differs_from_the_highest_version_is_refused(config: Path) -> None:
    rewrite(config, "customer_behavior", {"required": ["event_id"]}, versions="latest")

    with pytest.raises(
        SpecError,
        match=r"customer_behavior\.schema\.json: expected the same content as the highest "
        r"version customer_behavior_v2\.schema\.json",
    ):
        load_contract("bronze", "customer_behavior", 1, config=config)


def test_a_missing_latest_file_is_refused(config: Path) -> None:
    (config / "schema_definitions" / "bronze" / "crm_accounts.schema.json").unlink()

    with pytest.raises(SpecError, match=r"crm_accounts\.schema\.json: expected the latest"):
        load_contract("bronze", "crm_accounts", config=config)


def test_an_unknown_entity_or_version_is_refused(config: Path) -> None:
    with pytest.raises(SpecError, match=r"orders_v1\.schema\.json: expected at least one"):
        load_contract("bronze", "orders", config=config)
    with pytest.raises(SpecError, match=r"no such contract version .* expected one of \[1, 2\]"):
        load_contract("bronze", "customer_behavior", 3, config=config)


def test_a_file_that_is_not_json_is_refused(config: Path) -> None:
    for name in ("fx_rates.schema.json", "fx_rates_v1.schema.json"):
        (config / "schema_definitions" / "bronze" / name).write_text("{not json")

    with pytest.raises(SpecError, match=r"fx_rates\.schema\.json: expected a JSON contract file"):
        load_contract("bronze", "fx_rates", config=config)
