"""Registering Delta tables in Glue, against moto's Glue server on a local port (no Spark)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medallion.lakehouse.errors import DeltaLogUnreadable, WarehouseUnavailable
from medallion.lakehouse.serving import GoldColumn
from medallion.lakehouse.serving.glue import (
    glue_client,
    glue_type,
    read_delta_schema,
    register_delta_table,
    register_tables,
)
from medallion.lakehouse.storage import StorageRoot
from tests.support.glue_server import glue_server

REGION = "eu-west-1"
ORDER_FIELDS = [
    {"name": "order_id", "type": "string", "nullable": False, "metadata": {}},
    {"name": "quantity", "type": "long", "nullable": True, "metadata": {}},
    {"name": "amount_eur", "type": "decimal(18,2)", "nullable": True, "metadata": {}},
    {"name": "ordered_at", "type": "timestamp", "nullable": True, "metadata": {}},
]
ORDER_COLUMNS = [
    {"Name": "order_id", "Type": "string"},
    {"Name": "quantity", "Type": "bigint"},
    {"Name": "amount_eur", "Type": "decimal(18,2)"},
    {"Name": "ordered_at", "Type": "timestamp"},
]


def _free_port() -> int:
    """A local TCP port nothing listens on (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _metadata_action(fields: Sequence[dict[str, Any]], description: str = "") -> dict[str, Any]:
    """A Delta ``metaData`` action declaring ``fields``."""
    metadata: dict[str, Any] = {
        "id": "6f1c2b0e-0000-4000-8000-000000000001",
        "format": {"provider": "parquet", "options": {}},
        "schemaString": json.dumps({"type": "struct", "fields": list(fields)}),
        "partitionColumns": [],
        "configuration": {},
        "createdTime": 1767225600000,
    }
    if description:
        metadata["description"] = description
    return {"metaData": metadata}


def _write_commit(table: Path, version: int, actions: Sequence[dict[str, Any]]) -> None:
    """Write ``_delta_log/<version>.json`` by hand, one action per line."""
    log_dir = table / "_delta_log"
    log_dir.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(json.dumps(action) for action in actions)
    (log_dir / f"{version:020d}.json").write_text(lines + "\n", encoding="utf-8")


def _commit_info(operation: str) -> dict[str, Any]:
    """A ``commitInfo`` action, as writers add to every commit."""
    return {"commitInfo": {"timestamp": 1767225600000, "operation": operation}}


@pytest.fixture(scope="module")
def glue_endpoint() -> Iterator[str]:
    """moto's Glue on a free local port, with fake credentials, for this module's tests."""
    with glue_server() as url:
        yield url


@pytest.fixture
def glue(glue_endpoint: str) -> Any:
    """A Glue client on a freshly reset moto server."""
    httpx.post(f"{glue_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    return glue_client(REGION, glue_endpoint, max_attempts=1, connect_timeout=2, read_timeout=10)


@pytest.fixture
def orders_table(tmp_path: Path) -> Path:
    """A Delta table at version 0: protocol + metaData written by hand, no data files."""
    table = tmp_path / "gold" / "fact_orders"
    _write_commit(
        table,
        0,
        [
            {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
            _metadata_action(ORDER_FIELDS, description="One row per order."),
            _commit_info("CREATE TABLE"),
        ],
    )
    return table


def _registered(glue: Any, database: str, table: str) -> dict[str, Any]:
    """The fields registration sets, as ``get_table`` returns them."""
    found = glue.get_table(DatabaseName=database, Name=table)["Table"]
    fields = ("Name", "DatabaseName", "Description", "TableType", "Parameters", "PartitionKeys")
    return {field: found.get(field) for field in (*fields, "StorageDescriptor")}


def _expected(location: str, columns: list[dict[str, str]]) -> dict[str, Any]:
    """The Glue descriptor of gold.fact_orders registered at ``location`` with ``columns``."""
    return {
        "Name": "fact_orders",
        "DatabaseName": "gold",
        "Description": "One row per order.",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"table_type": "DELTA", "spark.sql.sources.provider": "delta"},
        "PartitionKeys": [],
        "StorageDescriptor": {
            "Columns": columns,
            "Location": location,
            "SerdeInfo": {"Parameters": {"path": location}},
        },
    }


def test_registration_creates_database_and_delta_table(glue: Any, orders_table: Path) -> None:
    """A first registration creates the database and an external Delta table with its columns."""
    location = "s3://lakehouse-gold/gold/fact_orders"

    action = register_delta_table(glue, "gold", "fact_orders", orders_table, location=location)

    assert action == "created"
    assert glue.get_database(Name="gold")["Database"]["Name"] == "gold"
    assert _registered(glue, "gold", "fact_orders") == _expected(location, ORDER_COLUMNS)


def test_reregistration_after_schema_change_updates_columns(glue: Any, orders_table: Path) -> None:
    """A column added in a later commit replaces the registered columns instead of failing."""
    register_delta_table(glue, "gold", "fact_orders", orders_table)
    channel = {"name": "channel", "type": "string", "nullable": True, "metadata": {}}
    _write_commit(
        orders_table,
        1,
        [
            _metadata_action([*ORDER_FIELDS, channel], description="One row per order."),
            _commit_info("ADD COLUMNS"),
        ],
    )

    action = register_delta_table(glue, "gold", "fact_orders", orders_table)

    assert action == "updated"
    expected_columns = [*ORDER_COLUMNS, {"Name": "channel", "Type": "string"}]
    location = str(orders_table.resolve())
    assert _registered(glue, "gold", "fact_orders") == _expected(location, expected_columns)


def test_registering_an_unchanged_table_again_changes_nothing(
    glue: Any, orders_table: Path
) -> None:
    """A second registration of the same schema and location leaves the Glue table alone."""
    register_delta_table(glue, "gold", "fact_orders", orders_table)

    action = register_delta_table(glue, "gold", "fact_orders", orders_table)

    assert action == "unchanged"
    versions = glue.get_table_versions(DatabaseName="gold", TableName="fact_orders")
    assert len(versions["TableVersions"]) == 1


def test_unreachable_glue_endpoint_raises_warehouse_unavailable(
    glue_endpoint: str, orders_table: Path
) -> None:
    """A Glue endpoint nobody listens on fails, after the client's retries, with a named error."""
    down = f"http://127.0.0.1:{_free_port()}"
    client = glue_client(REGION, down, max_attempts=2, connect_timeout=1, read_timeout=1)

    with pytest.raises(WarehouseUnavailable, match=rf"glue table gold\.fact_orders at {down}"):
        register_delta_table(client, "gold", "fact_orders", orders_table)


def test_register_tables_records_each_under_the_location_root(
    glue: Any, orders_table: Path
) -> None:
    """Lakehouse tables become ``database.<name>``, located under the storage root's S3 URL."""
    storage_root = orders_table.parent.parent
    daily = storage_root / "gold" / "orders_daily"
    _write_commit(daily, 0, [{"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
                             _metadata_action(ORDER_FIELDS[:2]), _commit_info("CREATE TABLE")])

    done = register_tables(glue, "analytics", StorageRoot(storage_root),
                           ["gold.fact_orders", "gold.orders_daily"],
                           location_root="s3://lake/prod/")

    assert done == {"gold.fact_orders": "created", "gold.orders_daily": "created"}
    found = glue.get_tables(DatabaseName="analytics")["TableList"]
    assert {t["Name"]: t["StorageDescriptor"]["Location"] for t in found} == {
        "fact_orders": "s3://lake/prod/gold/fact_orders",
        "orders_daily": "s3://lake/prod/gold/orders_daily",
    }
    assert [c["Name"] for c in _registered(glue, "analytics", "orders_daily")[
        "StorageDescriptor"]["Columns"]] == ["order_id", "quantity"]


def test_read_delta_schema_falls_back_to_the_latest_checkpoint(tmp_path: Path) -> None:
    """Without a metaData action in later commits, the schema comes from the Parquet checkpoint."""
    table = tmp_path / "fact_orders"
    log_dir = table / "_delta_log"
    log_dir.mkdir(parents=True)
    metadata = _metadata_action(ORDER_FIELDS)["metaData"]
    checkpoint = pa.table(
        {
            "metaData": [
                None,
                {
                    "id": metadata["id"],
                    "schemaString": metadata["schemaString"],
                    "partitionColumns": ["ordered_at"],
                },
            ]
        }
    )
    pq.write_table(checkpoint, log_dir / f"{10:020d}.checkpoint.parquet")
    _write_commit(table, 11, [_commit_info("WRITE")])

    schema = read_delta_schema(table)

    assert schema.version == 11
    assert schema.columns == (
        GoldColumn("order_id", "string"),
        GoldColumn("quantity", "bigint"),
        GoldColumn("amount_eur", "decimal(18,2)"),
        GoldColumn("ordered_at", "timestamp"),
    )
    assert schema.partition_columns == ("ordered_at",)


def test_read_delta_schema_without_a_log_raises_delta_log_unreadable(tmp_path: Path) -> None:
    """A directory that is not a Delta table is named in the error."""
    with pytest.raises(DeltaLogUnreadable, match=r"_delta_log: expected a Delta log directory"):
        read_delta_schema(tmp_path)


@pytest.mark.parametrize(
    ("spark_type", "expected"),
    [
        ("integer", "int"),
        ("date", "date"),
        ("double", "double"),
        ("boolean", "boolean"),
        ("decimal(38, 6)", "decimal(38,6)"),
        ({"type": "array", "elementType": "long", "containsNull": True}, "array<bigint>"),
        (
            {"type": "map", "keyType": "string", "valueType": "double", "valueContainsNull": True},
            "map<string,double>",
        ),
        (
            {
                "type": "struct",
                "fields": [
                    {"name": "city", "type": "string", "nullable": True, "metadata": {}},
                    {"name": "zip", "type": "integer", "nullable": True, "metadata": {}},
                ],
            },
            "struct<city:string,zip:int>",
        ),
    ],
)
def test_glue_type_maps_delta_types_to_hive_types(spark_type: Any, expected: str) -> None:
    """Delta's Spark type names become the Hive type names Glue and Athena use."""
    assert glue_type(spark_type) == expected


def test_glue_type_rejects_a_type_glue_cannot_hold() -> None:
    """An interval (or any unknown type) is refused with the type named."""
    with pytest.raises(DeltaLogUnreadable, match=r"Delta type 'interval day to second'"):
        glue_type("interval day to second")
