"""The Snowflake DW source: ``SNOWFLAKE_DW.SALES.ORDERS``, landed whole every day.

Grain of ORDERS: one row per order version as the DW serves it; ``order_id`` is the intended key
but is not enforced (the source carries null keys, duplicate records and duplicate keys on purpose).
``order_amount`` is VARCHAR so wrong-typed amounts such as ``"12,50"`` exist in the source exactly
as delivered; numbers are stored as their plain decimal text and parsing waits for bronze.
Timestamps are TIMESTAMP_TZ and come back as aware datetimes. Connections come from
``medallion.lakehouse.clients.snowflake``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from medallion.lakehouse.clients.snowflake import DATABASE, SCHEMA, SnowflakeConnection
from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.raw.landing import (
    LoadManifest,
    land_records,
    list_loads,
    load_dir,
    raw_zone,
    read_manifest,
)
from medallion.lakehouse.storage import StorageRoot

__all__ = [
    "DATABASE",
    "ORDER_COLUMNS",
    "SCHEMA",
    "SnowflakeConnection",
    "create_orders_table",
    "extract_orders",
    "extract_orders_to_raw",
    "replace_orders",
]

log = logging.getLogger(__name__)

SOURCE = "snowflake"
ENTITY = "orders"
ORDERS_TABLE = f"{DATABASE}.{SCHEMA}.ORDERS"
ORDER_COLUMNS: tuple[str, ...] = (
    "order_id", "customer_id", "order_ts", "status", "currency", "order_amount", "updated_at",
)  # fmt: skip
TIMESTAMP_COLUMNS: tuple[str, ...] = ("order_ts", "updated_at")
_ORDERS_DDL = f"""
CREATE TABLE IF NOT EXISTS {ORDERS_TABLE} (
    ORDER_ID VARCHAR(32),
    CUSTOMER_ID VARCHAR(32),
    ORDER_TS TIMESTAMP_TZ,
    STATUS VARCHAR(32),
    CURRENCY VARCHAR(8),
    ORDER_AMOUNT VARCHAR(64),
    UPDATED_AT TIMESTAMP_TZ
)"""


def create_orders_table(conn: SnowflakeConnection) -> None:
    """Create ``SNOWFLAKE_DW.SALES.ORDERS`` (and its database and schema) if missing."""
    cursor = conn.cursor()
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}")
    cursor.execute(_ORDERS_DDL)


def _amount_text(value: Any) -> str | None:
    """An amount as the source stores it: strings verbatim (dirt included), numbers as text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ConfigError(f"order_amount {value!r}: expected a number, a string or None")
    return format(Decimal(str(value)), "f")


def _order_params(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """One row's INSERT parameters, in ``ORDER_COLUMNS`` order."""
    unknown = set(row) - set(ORDER_COLUMNS)
    if unknown:
        raise ConfigError(
            f"order row has unknown columns {sorted(unknown)}; expected {ORDER_COLUMNS}"
        )
    return tuple(
        _amount_text(row.get(name)) if name == "order_amount" else row.get(name)
        for name in ORDER_COLUMNS
    )


def replace_orders(
    conn: SnowflakeConnection, rows: Sequence[Mapping[str, Any]], batch_size: int = 1000
) -> int:
    """Replace ORDERS' content with ``rows`` (truncate + batched INSERTs); returns rows inserted."""
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: expected at least 1")
    params = [_order_params(row) for row in rows]
    placeholders = ", ".join(["%s"] * len(ORDER_COLUMNS))
    insert = f"INSERT INTO {ORDERS_TABLE} ({', '.join(ORDER_COLUMNS)}) VALUES ({placeholders})"
    cursor = conn.cursor()
    cursor.execute(f"TRUNCATE TABLE {ORDERS_TABLE}")
    # pyformat executemany becomes one multi-row INSERT per batch (write_pandas fails on fakesnow).
    for start in range(0, len(params), batch_size):
        cursor.executemany(insert, params[start : start + batch_size])
    return len(params)


def _json_value(value: Any) -> Any:
    """A connector value as JSON-friendly data: timestamps ISO-8601, decimals as strings."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _fetch_batches(conn: SnowflakeConnection, batch_size: int) -> Iterator[dict[str, Any]]:
    """Every ORDERS row, in a total order, fetched ``batch_size`` at a time."""
    # Null keys last; duplicates of a key ordered by every other column so a re-run is byte-equal.
    order_by = ", ".join(
        f"{name} NULLS LAST" for name in ("order_id", "updated_at", *ORDER_COLUMNS)
    )
    # fakesnow's server hands a NULL timestamp to the connector as 1970-01-01: ask the database
    # which are null (harmless on real Snowflake).
    null_flags = [f"{name} IS NULL" for name in TIMESTAMP_COLUMNS]
    cursor = conn.cursor()
    cursor.execute(
        f"SELECT {', '.join([*ORDER_COLUMNS, *null_flags])} FROM {ORDERS_TABLE} ORDER BY {order_by}"
    )
    while batch := cursor.fetchmany(batch_size):
        for row in batch:
            order = dict(zip(ORDER_COLUMNS, row[: len(ORDER_COLUMNS)], strict=True))
            for name, is_null in zip(TIMESTAMP_COLUMNS, row[len(ORDER_COLUMNS) :], strict=True):
                if is_null:
                    order[name] = None
            yield {name: _json_value(value) for name, value in order.items()}


def extract_orders(conn: SnowflakeConnection, *, batch_size: int = 10_000) -> list[dict[str, Any]]:
    """The whole ORDERS table, JSON-friendly, ordered by order_id (nulls last)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: expected at least 1")
    return list(_fetch_batches(conn, batch_size))


def anomalies_of(orders: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Null keys and amounts that are not decimal numbers (``ORDER_AMOUNT`` is VARCHAR)."""
    return {
        "null_key:order_id": sum(1 for order in orders if order["order_id"] is None),
        "wrong_type:order_amount": sum(
            1 for order in orders
            if order["order_amount"] is not None and not _is_decimal(order["order_amount"])
        ),
    }


def _is_decimal(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def extract_orders_to_raw(
    storage_root: StorageRoot, conn: SnowflakeConnection, run_date: date
) -> LoadManifest:
    """Full load of ORDERS into ``raw/snowflake/orders/load_dt=<run_date>/`` (replaces it).

    A full load is a snapshot of the moment it runs, so a past day cannot be re-taken: when
    ``run_date`` already has a load and a later load exists, that load is returned unchanged
    (as the incremental extractors do). A re-run of the latest day replaces it exactly.
    """
    raw_root = raw_zone(storage_root)
    loads = list_loads(raw_root, SOURCE, ENTITY)
    if run_date in loads and loads[-1] > run_date:
        log.info("snowflake orders: load_dt=%s kept (a later snapshot exists)", run_date)
        return read_manifest(load_dir(raw_root, SOURCE, ENTITY, run_date))
    orders = extract_orders(conn)
    stamps = [order["updated_at"] for order in orders if order["updated_at"] is not None]
    positions = {
        "row_count": len(orders),
        "max_updated_at": max(stamps, key=datetime.fromisoformat) if stamps else None,
    }
    manifest = land_records(
        raw_root, SOURCE, ENTITY, run_date, orders, source_positions=positions,
        anomalies=anomalies_of(orders),
    )
    log.info(
        "snowflake orders: %d rows landed in %s (max updated_at %s)",
        manifest.row_count,
        manifest.load_dir,
        positions["max_updated_at"],
    )
    return manifest
