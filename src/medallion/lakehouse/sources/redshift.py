"""The Redshift ``behavior`` extractor: append-only events by a durable high-water mark.

Events are read in (event_ts, event_id) order with keyset pagination, strictly after the mark, so
on an append-only, immutable table no event is extracted twice and none is skipped across runs.
Caveat: a row inserted later with an (event_ts, event_id) below the mark is never extracted. That
is why, in real life, the mark must sit on an ingestion-ordered column (a load timestamp or an
identity column the loader assigns), not on the event's own clock, whenever events arrive late.
Rows whose event_ts or event_id is NULL cannot be ordered by the mark: they are never extracted,
and every load records how many there are (``source_positions["null_key_rows"]``).

The same extractor runs against PostgreSQL 15 (the local stand-in, through psycopg) and real
Redshift (through ``redshift_connector``), behind ``WarehouseConnection``; the SQL that differs
between them lives in ``Dialect``. Settings and connecting:
``medallion.lakehouse.clients.redshift``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg

from medallion.lakehouse.clients.redshift import (
    ConnectFailed,
    RedshiftSettings,
    connect_postgres,
    connect_redshift,
)
from medallion.lakehouse.errors import ConfigError, SourceUnavailable
from medallion.lakehouse.files import write_json_atomic
from medallion.lakehouse.raw.landing import (
    LoadManifest,
    land_records,
    list_loads,
    load_dir,
    peek_manifest,
    raw_zone,
)
from medallion.lakehouse.raw.replay import replay_end
from medallion.lakehouse.storage import StorageRoot

log = logging.getLogger(__name__)

SOURCE = "redshift"
ENTITY = "behavior"
BEHAVIOR_TABLE = "analytics.behavior"
BEHAVIOR_V1_COLUMNS: tuple[str, ...] = (
    "event_id",
    "session_id",
    "customer_id",
    "event_type",
    "event_ts",
    "page",
    "device",
)
BEHAVIOR_V2_COLUMNS: tuple[str, ...] = ("referrer", "app_version")
BEHAVIOR_COLUMNS: tuple[str, ...] = (*BEHAVIOR_V1_COLUMNS, *BEHAVIOR_V2_COLUMNS)
_BEHAVIOR_DDL = (
    "CREATE TABLE IF NOT EXISTS analytics.behavior ("
    "event_id TEXT, session_id TEXT, customer_id TEXT, event_type TEXT, event_ts TIMESTAMPTZ, "
    "page TEXT, device TEXT, referrer TEXT, app_version TEXT)"
)


@dataclass(frozen=True)
class Dialect:
    """The SQL that differs between PostgreSQL and Redshift, in one place."""

    name: str
    after_mark: str  # "strictly after the mark"; its parameters come from mark_params
    mark_params_repeat_ts: bool
    index_ddl: str | None

    def mark_params(self, mark: HighWaterMark) -> list[Any]:
        """Parameters of ``after_mark`` for ``mark``."""
        if self.mark_params_repeat_ts:
            return [mark.event_ts, mark.event_ts, mark.event_id]
        return [mark.event_ts, mark.event_id]


# PostgreSQL compares row values (and uses the index for it); Redshift has neither row-value
# comparison nor indexes (its sort key does the work), so it gets the expanded predicate.
POSTGRES = Dialect(
    name="postgresql",
    after_mark="(event_ts, event_id) > (%s, %s)",
    mark_params_repeat_ts=False,
    index_ddl="CREATE INDEX IF NOT EXISTS behavior_mark_idx ON analytics.behavior "
    "(event_ts, event_id)",
)
REDSHIFT = Dialect(
    name="redshift",
    after_mark="(event_ts > %s OR (event_ts = %s AND event_id > %s))",
    mark_params_repeat_ts=True,
    index_ddl=None,
)


@dataclass(frozen=True, order=True)
class HighWaterMark:
    """The (event_ts, event_id) of the last event extracted; ordered like the extraction."""

    event_ts: datetime
    event_id: str

    def __post_init__(self) -> None:
        """Reject naive timestamps: a mark must name one instant."""
        if self.event_ts.tzinfo is None:
            raise ConfigError(
                f"high-water mark event_ts={self.event_ts.isoformat()}: expected timezone-aware"
            )

    def to_json(self) -> dict[str, str]:
        """JSON form: ``{"event_ts": ISO-8601 in UTC, "event_id": ...}``."""
        return {
            "event_ts": self.event_ts.astimezone(UTC).isoformat(),
            "event_id": self.event_id,
        }

    @classmethod
    def from_json(cls, content: Mapping[str, Any]) -> HighWaterMark:
        """Parse what ``to_json`` wrote; a malformed mark raises ``ConfigError``."""
        try:
            return cls(datetime.fromisoformat(content["event_ts"]), str(content["event_id"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(
                f"high-water mark {content!r:.200}: expected {{'event_ts': ISO-8601 with offset, "
                f"'event_id': str}}; {error!r}"
            ) from error


class WarehouseConnection(Protocol):
    """What the extractor needs from a warehouse connection."""

    dialect: Dialect
    location: str  # host:port/database, for messages (never a secret)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Run a statement and commit it."""
        ...

    def query(
        self, statement: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(column names, rows) of a query."""
        ...

    def insert_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Bulk-insert ``rows`` into ``table`` and commit; returns how many."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class PostgresWarehouse:
    """``WarehouseConnection`` over a psycopg 3 connection (the local PostgreSQL stand-in)."""

    dialect = POSTGRES

    def __init__(self, connection: psycopg.Connection, location: str) -> None:
        self.connection = connection
        self.location = location

    @classmethod
    def connect(
        cls,
        settings: RedshiftSettings,
        *,
        attempts: int = 3,
        initial_wait_seconds: float = 0.5,
        connect_timeout: int = 5,
    ) -> PostgresWarehouse:
        """Connect (UTC session), retrying; ``SourceUnavailable`` after the last attempt."""
        last_error = ""
        for attempt in range(max(1, attempts)):
            if attempt:
                time.sleep(initial_wait_seconds * 2 ** (attempt - 1))
            try:
                connection = connect_postgres(settings, connect_timeout=connect_timeout)
            except ConnectFailed as error:
                last_error = error.detail
                continue
            return cls(connection, settings.location)
        raise SourceUnavailable(
            f"source {SOURCE!r} at {settings.location_with_user}: no connection after "
            f"{attempts} attempt(s); last error: {last_error}"
        )

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Run a statement and commit it."""
        with self._errors_named():
            self.connection.execute(statement.encode(), params or None)
            self.connection.commit()

    def query(
        self, statement: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(column names, rows) of a query."""
        with self._errors_named():
            cursor = self.connection.execute(statement.encode(), params or None)
            columns = [column.name for column in cursor.description or ()]
            rows = cursor.fetchall()
            self.connection.commit()
        return columns, rows

    def insert_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """``COPY table (columns) FROM STDIN`` in one transaction; returns how many rows."""
        count = 0
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with self._errors_named(), self.connection.cursor() as cursor:
            with cursor.copy(statement.encode()) as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
            self.connection.commit()
        return count

    def close(self) -> None:
        """Close the psycopg connection."""
        self.connection.close()

    def _errors_named(self) -> _NameConnectionErrors:
        return _NameConnectionErrors(self.location, self.connection)


class _NameConnectionErrors:
    """Turn a lost connection into ``SourceUnavailable``; roll back on any error."""

    def __init__(self, location: str, connection: psycopg.Connection) -> None:
        self.location = location
        self.connection = connection

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if error is None:
            return
        if not self.connection.closed:
            self.connection.rollback()
        if isinstance(error, psycopg.OperationalError):
            raise SourceUnavailable(
                f"source {SOURCE!r} at {self.location}: connection failed; last error: {error}"
            ) from error


class RedshiftWarehouse:
    """``WarehouseConnection`` over ``redshift_connector`` (real Redshift; not for PostgreSQL)."""

    dialect = REDSHIFT

    def __init__(self, connection: Any, location: str) -> None:
        self.connection = connection
        self.location = location

    @classmethod
    def connect(cls, settings: RedshiftSettings, **options: Any) -> RedshiftWarehouse:
        """Connect once (``options`` go to ``redshift_connector.connect``); ``SourceUnavailable``
        when the cluster refuses, ``ConfigError`` when the driver is not installed."""
        return cls(connect_redshift(settings, **options), settings.location)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Run a statement and commit it."""
        cursor = self.connection.cursor()
        cursor.execute(statement, tuple(params) or None)
        self.connection.commit()

    def query(
        self, statement: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(column names, rows) of a query."""
        cursor = self.connection.cursor()
        cursor.execute(statement, tuple(params) or None)
        columns = [str(column[0]) for column in cursor.description or ()]
        rows = [tuple(row) for row in cursor.fetchall()]
        self.connection.commit()
        return columns, rows

    def insert_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Batched INSERTs (Redshift's COPY reads S3, not the client); returns how many."""
        batch = [tuple(row) for row in rows]
        placeholders = ", ".join(["%s"] * len(columns))
        cursor = self.connection.cursor()
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", batch
        )
        self.connection.commit()
        return len(batch)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def connect_warehouse(
    settings: RedshiftSettings, *, initial_wait_seconds: float = 0.5
) -> WarehouseConnection:
    """A ``RedshiftWarehouse`` for a ``redshift://`` database, else a ``PostgresWarehouse``.

    ``initial_wait_seconds`` is the PostgreSQL connection's first wait between its attempts; a
    ``redshift_connector`` connection is attempted once (the task's retries cover it).
    """
    if settings.is_redshift:
        return RedshiftWarehouse.connect(settings)
    return PostgresWarehouse.connect(settings, initial_wait_seconds=initial_wait_seconds)


def create_behavior_table(conn: WarehouseConnection) -> None:
    """Create schema ``analytics`` and table ``analytics.behavior`` (v2 columns included)."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS analytics")
    conn.execute(_BEHAVIOR_DDL)
    if conn.dialect.index_ddl:
        conn.execute(conn.dialect.index_ddl)


def load_behavior_events(conn: WarehouseConnection, events: list[dict[str, Any]]) -> int:
    """Append ``events`` (dicts keyed by column; missing v2 columns are NULL); returns how many."""
    unknown = sorted({key for event in events for key in event} - set(BEHAVIOR_COLUMNS))
    if unknown:
        raise ConfigError(
            f"behavior events: expected keys among {list(BEHAVIOR_COLUMNS)}, found {unknown}"
        )
    rows = ([event.get(column) for column in BEHAVIOR_COLUMNS] for event in events)
    return conn.insert_rows(BEHAVIOR_TABLE, BEHAVIOR_COLUMNS, rows)


def extract_behavior(
    conn: WarehouseConnection,
    high_water_mark: HighWaterMark | None,
    *,
    batch_size: int = 50_000,
    up_to: HighWaterMark | None = None,
) -> tuple[list[dict[str, Any]], HighWaterMark | None]:
    """Every event strictly after the mark (and not after ``up_to``), in (event_ts, event_id)
    order, and the new mark.

    Grain: one dict per ``analytics.behavior`` row, every column as stored (``SELECT *``, so a
    column the contract does not know yet reaches raw and schema-drift detection); timestamps as
    ISO-8601 strings in UTC. The new mark is the last row's (event_ts, event_id), or the old mark
    when nothing is new. Pages with keyset pagination of ``batch_size`` rows.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: expected at least 1")
    events: list[dict[str, Any]] = []
    mark = high_water_mark
    upper = "" if up_to is None else f"NOT {conn.dialect.after_mark} AND "
    upper_params = [] if up_to is None else conn.dialect.mark_params(up_to)
    while True:
        after = "" if mark is None else f"{conn.dialect.after_mark} AND "
        params = [*([] if mark is None else conn.dialect.mark_params(mark)), *upper_params]
        columns, rows = conn.query(
            f"SELECT * FROM {BEHAVIOR_TABLE} WHERE {after}{upper}"
            "event_ts IS NOT NULL AND event_id IS NOT NULL "
            f"ORDER BY event_ts, event_id LIMIT {int(batch_size)}",
            params,
        )
        page = [dict(zip(columns, row, strict=True)) for row in rows]
        if len(page) == batch_size:
            page = _whole_last_key(conn, page)
        events.extend({name: _as_stored(value) for name, value in row.items()} for row in page)
        if page:
            mark = HighWaterMark(page[-1]["event_ts"], str(page[-1]["event_id"]))
        if len(rows) < batch_size:
            return events, mark


def _whole_last_key(conn: WarehouseConnection, page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``page`` with every row of its last (event_ts, event_id), however many share it.

    Duplicate keys are possible (dirty source): a page must not end inside a group of them, or
    the next page, which starts strictly after that key, would skip the rest of the group.
    """
    last_ts, last_id = page[-1]["event_ts"], page[-1]["event_id"]
    head = [row for row in page if (row["event_ts"], row["event_id"]) != (last_ts, last_id)]
    columns, rows = conn.query(
        f"SELECT * FROM {BEHAVIOR_TABLE} WHERE event_ts = %s AND event_id = %s",
        [last_ts, last_id],
    )
    return head + [dict(zip(columns, row, strict=True)) for row in rows]


def count_null_key_rows(conn: WarehouseConnection) -> int:
    """Rows the mark cannot order (NULL event_ts or event_id): never extracted, only counted."""
    _, rows = conn.query(
        f"SELECT count(*) FROM {BEHAVIOR_TABLE} WHERE event_ts IS NULL OR event_id IS NULL"
    )
    return int(rows[0][0])


def read_high_water_mark(state_path: Path) -> HighWaterMark | None:
    """The mark saved at ``state_path``; None when no run has saved one yet."""
    try:
        content = json.loads(Path(state_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise ConfigError(f"{state_path}: expected a JSON high-water mark; {error}") from error
    mark = content.get("high_water_mark") if isinstance(content, dict) else None
    return None if mark is None else HighWaterMark.from_json(mark)


def write_high_water_mark(state_path: Path, mark: HighWaterMark | None) -> None:
    """Save the mark atomically and durably: temp file, fsync, ``os.replace``."""
    state_path = Path(state_path)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(state_path, {"high_water_mark": None if mark is None else mark.to_json()})


def extract_behavior_to_raw(
    storage_root: StorageRoot,
    conn: WarehouseConnection,
    run_date: date,
    state_path: Path,
    *,
    batch_size: int = 50_000,
) -> LoadManifest:
    """Land every event after the saved mark as ``raw/redshift/behavior/load_dt=run_date``.

    The mark is saved only after the manifest is durable. Where extraction starts:

    - a complete load of ``run_date`` exists and is the latest load: from that load's own "from"
      mark, so a rerun (after a crash before the mark was saved, or a plain retry) lands the same
      rows again (a no-op) or a superset, never an emptied day;
    - it exists but a later load exists too: nothing is extracted, the existing load is returned;
    - otherwise: from the later of the saved mark and every landed load's "to" mark, so a crash
      on one day is not re-extracted into the next day's load.

    A run with nothing new lands an empty load (row_count 0), so downstream sees the day was
    processed. Grain of the landed rows: one per event, as ``extract_behavior`` returns them.
    """
    raw_root = raw_zone(storage_root)
    landed = _landed_positions(raw_root)
    today = landed.get(run_date)
    if today is not None and max(landed) != run_date:
        return _read_manifest_json(raw_root, run_date)
    if today is not None:
        start = today[0]
    else:
        candidates = [read_high_water_mark(state_path), *(to for _, to in landed.values())]
        known = [mark for mark in candidates if mark is not None]
        start = max(known) if known else None
    # A date replayed after a reset stops where its load ended before it
    # (medallion.lakehouse.raw.replay).
    replayed = replay_end(storage_root, SOURCE, run_date)
    events: list[dict[str, Any]]
    if replayed is not None and replayed.position is None:
        events, end = [], start  # that day's load ended before any event
    else:
        up_to = None if replayed is None else HighWaterMark.from_json(replayed.position)
        events, end = extract_behavior(conn, start, batch_size=batch_size, up_to=up_to)
    manifest = land_records(
        raw_root,
        SOURCE,
        ENTITY,
        run_date,
        events,
        source_positions={
            "from": None if start is None else start.to_json(),
            "to": None if end is None else end.to_json(),
            "null_key_rows": count_null_key_rows(conn),
        },
        expected_columns=BEHAVIOR_COLUMNS,
    )
    write_high_water_mark(state_path, end)
    log.info(
        "redshift behavior: %d events landed for %s from %s (mark %s -> %s)",
        manifest.row_count,
        run_date,
        conn.location,
        start,
        end,
    )
    return manifest


def _landed_positions(
    raw_root: Path,
) -> dict[date, tuple[HighWaterMark | None, HighWaterMark | None]]:
    """(from, to) marks of every complete behavior load, by load date."""
    positions = {}
    for load_dt in list_loads(raw_root, SOURCE, ENTITY):
        recorded = _read_manifest_json(raw_root, load_dt).source_positions
        positions[load_dt] = (
            _mark_or_none(recorded.get("from")),
            _mark_or_none(recorded.get("to")),
        )
    return positions


def _read_manifest_json(raw_root: Path, load_dt: date) -> LoadManifest:
    """A load's manifest, without re-hashing its data files."""
    return peek_manifest(load_dir(raw_root, SOURCE, ENTITY, load_dt))


def _mark_or_none(content: Any) -> HighWaterMark | None:
    return None if content is None else HighWaterMark.from_json(content)


def _as_stored(value: Any) -> Any:
    """A column value as JSON carries it: timestamps as ISO-8601 (UTC when zoned)."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value

