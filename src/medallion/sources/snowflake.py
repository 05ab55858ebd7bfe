"""The Snowflake DW source: ``SNOWFLAKE_DW.SALES.ORDERS``, landed whole every day.

Grain of ORDERS: one row per order version as the DW serves it; ``order_id`` is the intended key
but is not enforced (the source carries null keys, duplicate records and duplicate keys on purpose).
``order_amount`` is VARCHAR so wrong-typed amounts such as ``"12,50"`` exist in the source exactly
as delivered; numbers are stored as their plain decimal text and parsing waits for bronze.
Timestamps are TIMESTAMP_TZ and come back as aware datetimes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import snowflake.connector
from snowflake.connector import SnowflakeConnection
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt

from medallion.errors import ConfigError, MedallionError, SourceUnavailable
from medallion.raw.landing import (
    LoadManifest,
    land_records,
    list_loads,
    load_dir,
    raw_zone,
    read_manifest,
)
from medallion.sources.http import backoff

__all__ = [
    "DATABASE",
    "ORDER_COLUMNS",
    "SCHEMA",
    "SnowflakeConnection",
    "SnowflakeSettings",
    "connect_to",
    "create_orders_table",
    "extract_orders",
    "extract_orders_to_raw",
    "replace_orders",
    "settings_from_env",
]

log = logging.getLogger(__name__)

SOURCE = "snowflake"
ENTITY = "orders"
DATABASE = "SNOWFLAKE_DW"
SCHEMA = "SALES"
ORDERS_TABLE = f"{DATABASE}.{SCHEMA}.ORDERS"
USER_ENV = "MEDALLION_SNOWFLAKE_USER"
PASSWORD_ENV = "MEDALLION_SNOWFLAKE_PASSWORD"  # noqa: S105 (a variable name)
# Harmless defaults: the local stand-in accepts any credentials.
DEFAULT_USER = "medallion"
DEFAULT_PASSWORD = "medallion-local"  # noqa: S105 (the stand-in ignores it)
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


@dataclass(frozen=True)
class SnowflakeSettings:
    """Where and as whom to connect; the password never appears in ``repr``."""

    host: str
    port: int
    account: str
    user: str
    password: str = field(repr=False)
    database: str = DATABASE
    schema: str = SCHEMA
    protocol: str = "https"
    warehouse: str | None = None  # the virtual warehouse a real account runs queries on
    role: str | None = None  # None: the user's default role

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"


def settings_from_env(
    *,
    host: str,
    port: int,
    account: str = "fakesnow",
    database: str = DATABASE,
    schema: str = SCHEMA,
    protocol: str = "https",
) -> SnowflakeSettings:
    """Settings with user/password from ``MEDALLION_SNOWFLAKE_USER``/``_PASSWORD`` (or defaults)."""
    return SnowflakeSettings(
        host=host,
        port=port,
        account=account,
        user=os.environ.get(USER_ENV, DEFAULT_USER),
        password=os.environ.get(PASSWORD_ENV, DEFAULT_PASSWORD),
        database=database,
        schema=schema,
        protocol=protocol,
    )


def connect_to(
    settings: SnowflakeSettings,
    *,
    attempts: int = 3,
    initial_wait_seconds: float = 0.5,
    max_wait_seconds: float = 5.0,
    login_timeout_seconds: int = 10,
    network_timeout_seconds: int | None = 10,
    unavailable: Callable[[str], MedallionError] | None = None,
) -> SnowflakeConnection:
    """Connect with retries and backoff.

    ``network_timeout_seconds`` bounds every request of the connection (None: no bound, for
    long-running statements). After the last attempt, raises ``unavailable(detail)`` (by
    default ``SourceUnavailable`` naming this source), ``detail`` being the last error with the
    password masked.
    """
    if attempts < 1:
        raise ConfigError(f"attempts={attempts}: expected at least 1")

    def attempt() -> SnowflakeConnection:
        return snowflake.connector.connect(
            user=settings.user,
            password=settings.password,
            account=settings.account,
            host=settings.host,
            port=settings.port,
            protocol=settings.protocol,
            database=settings.database,
            schema=settings.schema,
            warehouse=settings.warehouse,
            role=settings.role,
            login_timeout=login_timeout_seconds,
            network_timeout=network_timeout_seconds,
            session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        )

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=backoff(initial_wait_seconds, max_wait_seconds),
        retry=retry_if_exception_type(snowflake.connector.errors.Error),
    )
    try:
        return retrying(attempt)
    except RetryError as error:
        last = error.last_attempt.exception()
        detail = f"{type(last).__name__}: {last}"
        if settings.password:
            detail = detail.replace(settings.password, "***")
        if unavailable is not None:
            raise unavailable(detail) from None
        raise SourceUnavailable(
            f"source {SOURCE!r} unavailable at {settings.address} (account {settings.account!r}, "
            f"user {settings.user!r}) after {attempts} attempts; last error: {detail}"
        ) from None


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
    storage_root: str | Path, conn: SnowflakeConnection, run_date: date
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
