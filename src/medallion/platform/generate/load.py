"""Advance the world to day D: push generated data into the running local stand-ins.

``load_day(storage_root, data, day)`` makes each source system look as it would at the end of
business day ``day``. Dirty records reach the systems as they are, as far as each system can hold
them; what a system cannot hold is skipped or altered, and counted in the ``LoadReport``:

- Snowflake ``SNOWFLAKE_DW.SALES.ORDERS`` (daily full load): replaced by ``orders_snapshot``.
  Null keys are NULL ``ORDER_ID``; duplicates are repeated rows; wrong-typed amounts such as
  ``"12,50"`` are kept verbatim (``ORDER_AMOUNT`` is VARCHAR). The table has a fixed schema and the
  extractor selects named columns, so an unknown column is dropped from its row (the row is kept;
  counted as ``unknown_column_dropped``). Rows travel as one JSON string per batch unpacked by
  ``FLATTEN`` (fakesnow parses multi-row INSERTs at ~800 rows/s, whatever the batch size).
- PostgreSQL ``analytics.behavior`` (append-only): the events whose ``event_ts`` falls on ``day``,
  deleted and re-inserted in one transaction, so loading a day twice never duplicates. Null keys
  are NULL ``event_id``; duplicates are repeated rows. An unknown column is schema drift: it is
  added to the table as a TEXT column (the extractor reads ``SELECT *``, so it reaches raw); rows
  that carry it are counted as ``unknown_column_added``.
- CRM stand-in: ``crm_accounts_on(data, day)`` upserted by ``customer_id`` in generator order
  (late updates arrive on their ``available_on`` day with an older ``last_modified_date``). A
  HubSpot record cannot exist without its id, so null-key versions are skipped
  (``null_key_skipped``); the stand-in keeps only its known properties, so an unknown column is
  dropped by it (``unknown_column_dropped``). Out-of-set values are served as loaded.
- Kafka topic ``orders``: the order events whose ``event_ts`` falls on ``day``, as JSON, keyed by
  ``order_id`` (a null key is a message without key); wrong types and unknown fields travel in the
  JSON as they are. Kafka has no delete, so idempotence per day needs bookkeeping: the days already
  produced are listed in ``<storage_root>/_system/generate/kafka_orders_days.json`` with the
  broker's cluster id. That file is the generator's bookkeeping of what it pushed, not the
  pipeline's state: the pipeline's checkpoints live elsewhere and never read it. The day is
  marked after the broker acknowledged every message, so a crash in between re-produces that day.
- FX rates: nothing to load; the stand-in computes them from (seed, date), like the generator.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from psycopg import sql

from medallion.lakehouse.errors import SourceResponseError, SourceUnavailable
from medallion.lakehouse.sources import redshift, snowflake
from medallion.lakehouse.sources.snowflake import SnowflakeConnection
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import kafka as kafka_service
from medallion.platform.devstack import postgres as postgres_service
from medallion.platform.devstack import snowflake as snowflake_service
from medallion.platform.devstack.service import read_info
from medallion.platform.generate.model import (
    SOURCE_COLUMNS,
    GeneratedData,
    Record,
    crm_accounts_on,
    orders_snapshot,
    source_row,
)

log = logging.getLogger(__name__)

KAFKA_TOPIC = "orders"
KAFKA_KEY = "order_id"
CRM_SERVICE = "crm_api"
MARKER_DIR = Path("_system") / "generate"
KAFKA_MARKER = "kafka_orders_days.json"
SNOWFLAKE_BATCH_SIZE = 10_000  # one JSON string per batch: far below Snowflake's 16 MB limit
CRM_BATCH_SIZE = 1_000
UNKNOWN_COLUMN_DROPPED = "unknown_column_dropped"
UNKNOWN_COLUMN_ADDED = "unknown_column_added"
NULL_KEY_SKIPPED = "null_key_skipped"
_ORDER_COLUMN_TYPES = {"order_ts": "TIMESTAMP_TZ", "updated_at": "TIMESTAMP_TZ"}
_INSERT_FROM_JSON = (
    f"INSERT INTO {snowflake.ORDERS_TABLE} ({', '.join(snowflake.ORDER_COLUMNS)}) SELECT "
    + ", ".join(
        f"flattened.value:{column}::{_ORDER_COLUMN_TYPES.get(column, 'VARCHAR')}"
        for column in snowflake.ORDER_COLUMNS
    )
    + " FROM TABLE(FLATTEN(input => PARSE_JSON(%s))) flattened"
)


@dataclass(frozen=True)
class SystemLoad:
    """What one system received for a day: rows loaded, records skipped or altered, by reason."""

    system: str
    rows: int
    skipped: dict[str, int] = field(default_factory=dict)
    altered: dict[str, int] = field(default_factory=dict)
    already_loaded: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class LoadReport:
    """The load of one day into every source system."""

    day: date
    snowflake: SystemLoad
    postgres: SystemLoad
    crm: SystemLoad
    kafka: SystemLoad

    @property
    def systems(self) -> tuple[SystemLoad, ...]:
        """The per-system loads, in a fixed order."""
        return (self.snowflake, self.postgres, self.crm, self.kafka)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    """[midnight UTC of ``day``, midnight UTC of the next day)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _on_day(records: Iterable[Record], day: date) -> list[Record]:
    """The records whose event_ts falls on ``day`` (UTC)."""
    start, end = _day_bounds(day)
    return [record for record in records if start <= record["event_ts"] < end]


def _unknown_columns(record: Record, source: str, known: Sequence[str]) -> list[str]:
    """The record's columns the source's fixed schema does not have."""
    return [column for column in source_row(record, source) if column not in known]


def _json_default(value: Any) -> Any:
    """JSON form of datetimes and dates: ISO-8601."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__} {value!r} to JSON")


def behavior_events_on(data: GeneratedData, day: date) -> list[Record]:
    """The behavior events of ``day`` as the source holds them (one row per event record)."""
    return [source_row(event, "behavior_events") for event in _on_day(data.behavior_events, day)]


def kafka_order_events_on(data: GeneratedData, day: date) -> list[Record]:
    """The order events of ``day`` as produced to Kafka (one message per event record)."""
    return _on_day(data.kafka_order_events, day)


def load_snowflake(storage_root: StorageRoot, data: GeneratedData, day: date) -> SystemLoad:
    """Replace ``SNOWFLAKE_DW.SALES.ORDERS`` by the snapshot of ``day``."""
    began = time.monotonic()
    known = snowflake.ORDER_COLUMNS
    rows = orders_snapshot(data, day)
    dropped = sum(1 for row in rows if any(column not in known for column in row))
    fitted = [{column: row.get(column) for column in known} for row in rows]
    conn = snowflake_service.connect(storage_root)
    try:
        snowflake.create_orders_table(conn)
        loaded = _replace_orders_as_json(conn, fitted)
    finally:
        conn.close()
    altered = {UNKNOWN_COLUMN_DROPPED: dropped} if dropped else {}
    return SystemLoad("snowflake", loaded, altered=altered, seconds=time.monotonic() - began)


def _amount_as_text(value: Any) -> Any:
    """An amount as ``replace_orders`` stores it: strings verbatim (dirt too), numbers as text."""
    if value is None or isinstance(value, str | bool):
        return value
    return format(Decimal(str(value)), "f")


def _replace_orders_as_json(conn: SnowflakeConnection, rows: Sequence[Record]) -> int:
    """Truncate ORDERS, then insert ``rows`` as JSON arrays flattened server-side.

    ``snowflake.replace_orders`` sends multi-row INSERTs, which fakesnow parses at ~800 rows/s
    whatever the batch size; one JSON string per batch, unpacked with FLATTEN, loads 5,000 rows
    in ~0.3 s. Values reach the table as ``replace_orders`` would store them (amounts as text).
    """
    cursor = conn.cursor()
    cursor.execute(f"TRUNCATE TABLE {snowflake.ORDERS_TABLE}")
    for start in range(0, len(rows), SNOWFLAKE_BATCH_SIZE):
        batch = [
            dict(row, order_amount=_amount_as_text(row.get("order_amount")))
            for row in rows[start : start + SNOWFLAKE_BATCH_SIZE]
        ]
        cursor.execute(_INSERT_FROM_JSON, (json.dumps(batch, default=_json_default),))
    return len(rows)


def load_postgres(storage_root: StorageRoot, data: GeneratedData, day: date) -> SystemLoad:
    """Replace the behavior events of ``day`` in ``analytics.behavior`` (one transaction)."""
    began = time.monotonic()
    events = behavior_events_on(data, day)
    known = redshift.BEHAVIOR_COLUMNS
    extra = sorted({column for event in events for column in event if column not in known})
    columns = (*known, *extra)
    with_extra = sum(1 for event in events if any(column in event for column in extra))
    start, end = _day_bounds(day)
    with postgres_service.connect(storage_root) as conn:
        info = read_info(storage_root, postgres_service.NAME)
        location = info.url if info else str(storage_root)
        redshift.create_behavior_table(redshift.PostgresWarehouse(conn, location))
        with conn.transaction():
            for column in extra:
                conn.execute(
                    sql.SQL(
                        "ALTER TABLE analytics.behavior ADD COLUMN IF NOT EXISTS {} TEXT"
                    ).format(sql.Identifier(column))
                )
            conn.execute(
                "DELETE FROM analytics.behavior WHERE event_ts >= %s AND event_ts < %s",
                (start, end),
            )
            copy_statement = sql.SQL("COPY analytics.behavior ({}) FROM STDIN").format(
                sql.SQL(", ").join(sql.Identifier(column) for column in columns)
            )
            with conn.cursor() as cursor, cursor.copy(copy_statement) as copy:
                for event in events:
                    copy.write_row([_as_text_if_extra(event, column, extra) for column in columns])
    altered = {UNKNOWN_COLUMN_ADDED: with_extra} if with_extra else {}
    return SystemLoad("postgres", len(events), altered=altered, seconds=time.monotonic() - began)


def _as_text_if_extra(event: Record, column: str, extra: Sequence[str]) -> Any:
    """The event's value of ``column``; an added (TEXT) column's value as JSON text."""
    value = event.get(column)
    if column in extra and value is not None and not isinstance(value, str):
        return json.dumps(value, default=_json_default)
    return value


def load_crm(storage_root: StorageRoot, data: GeneratedData, day: date) -> SystemLoad:
    """Upsert the CRM account versions that become available on ``day``."""
    began = time.monotonic()
    info = read_info(storage_root, CRM_SERVICE)
    if info is None:
        raise SourceUnavailable(
            f"source 'crm': no local CRM stand-in for {storage_root}; start it "
            "with `medallion devstack up`"
        )
    versions = crm_accounts_on(data, day)
    keyed = [version for version in versions if version.get("customer_id") is not None]
    known = SOURCE_COLUMNS["crm_accounts"]
    dropped = sum(1 for version in keyed if _unknown_columns(version, "crm_accounts", known))
    url = f"{info.url}/admin/records"
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(keyed), CRM_BATCH_SIZE):
            body = json.dumps(keyed[start : start + CRM_BATCH_SIZE], default=_json_default)
            try:
                response = client.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as error:
                raise SourceUnavailable(f"source 'crm' at {url}: {error!r}") from error
            if response.status_code != httpx.codes.OK:
                raise SourceResponseError(
                    f"source 'crm' at {url}: expected 200 for an upsert of "
                    f"{len(keyed[start : start + CRM_BATCH_SIZE])} records, found "
                    f"{response.status_code}: {response.text[:200]}"
                )
    skipped = len(versions) - len(keyed)
    return SystemLoad(
        "crm",
        len(keyed),
        skipped={NULL_KEY_SKIPPED: skipped} if skipped else {},
        altered={UNKNOWN_COLUMN_DROPPED: dropped} if dropped else {},
        seconds=time.monotonic() - began,
    )


def _marker_path(storage_root: StorageRoot) -> Path:
    """The generator's record of the days already produced to Kafka."""
    return storage_root / MARKER_DIR / KAFKA_MARKER


def _produced_days(storage_root: StorageRoot, cluster_id: str) -> set[str]:
    """Days already produced to this broker (a new cluster id starts from nothing)."""
    try:
        marker = json.loads(_marker_path(storage_root).read_text())
    except FileNotFoundError:
        return set()
    if marker.get("cluster_id") != cluster_id or marker.get("topic") != KAFKA_TOPIC:
        return set()
    return set(marker.get("days", []))


def _mark_produced(storage_root: StorageRoot, cluster_id: str, days: set[str]) -> None:
    """Record ``days`` as produced, atomically."""
    path = _marker_path(storage_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(
        json.dumps({"cluster_id": cluster_id, "topic": KAFKA_TOPIC, "days": sorted(days)})
    )
    temporary.replace(path)


def load_kafka(storage_root: StorageRoot, data: GeneratedData, day: date) -> SystemLoad:
    """Produce the order events of ``day`` to topic ``orders``, unless already produced."""
    began = time.monotonic()
    info = kafka_service.status(storage_root)
    if info is None:
        raise SourceUnavailable(
            f"source 'kafka': no local broker for {storage_root}; start it with "
            "`medallion devstack up`"
        )
    bootstrap, cluster_id = info.details["bootstrap_servers"], info.details["cluster_id"]
    events = kafka_order_events_on(data, day)
    produced = _produced_days(storage_root, cluster_id)
    if day.isoformat() in produced:
        return SystemLoad(
            "kafka", len(events), already_loaded=True, seconds=time.monotonic() - began
        )
    kafka_service.ensure_topic(bootstrap, KAFKA_TOPIC)
    delivered = kafka_service.produce_json(
        bootstrap,
        KAFKA_TOPIC,
        events,
        KAFKA_KEY,
        allow_null_keys=True,
        json_default=_json_default,
    )
    _mark_produced(storage_root, cluster_id, produced | {day.isoformat()})
    return SystemLoad("kafka", delivered, seconds=time.monotonic() - began)


def load_day(storage_root: StorageRoot, data: GeneratedData, day: date) -> LoadReport:
    """Make every source system look as it would at the end of business day ``day``.

    The four systems are independent and load at once: each mostly waits on its own server.
    """
    loaders = (load_snowflake, load_postgres, load_crm, load_kafka)
    with ThreadPoolExecutor(len(loaders), thread_name_prefix="load-day") as pool:
        snowflake, postgres, crm, kafka = pool.map(
            lambda load: load(storage_root, data, day), loaders
        )
    report = LoadReport(day=day, snowflake=snowflake, postgres=postgres, crm=crm, kafka=kafka)
    for system in report.systems:
        log.info(
            "loaded %s for %s: %d rows, skipped %s, altered %s%s in %.2f s",
            system.system, day, system.rows, system.skipped, system.altered,
            " (already loaded)" if system.already_loaded else "", system.seconds,
        )  # fmt: skip
    return report


def load_days(
    storage_root: StorageRoot, data: GeneratedData, days: Iterable[date]
) -> list[LoadReport]:
    """``load_day`` for each of ``days``, in the order given."""
    return [load_day(storage_root, data, day) for day in days]
