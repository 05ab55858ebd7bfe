"""The Snowflake sink: gold mirrored into ``SCHEMA.TABLE`` of the connection's database.

Grain of a target: one row per gold key (``GoldSnapshot.keys``), columns named as in gold
(upper-cased by Snowflake); a column gold has dropped stays, no longer filled. Grain of
``SCHEMA._MEDALLION_PUBLISH_LOG``: one row per publish that ran (a skipped one writes none); the
latest row of a (target, gold table) is the version the target holds.

A publish: create the schema, target and log when missing; load the snapshot into a transient
staging table (Parquet files PUT into a temporary stage, then one ``COPY INTO``: Snowflake's bulk
path, the one ``write_pandas`` takes); refuse null or duplicate keys; ``ALTER TABLE ... ADD
COLUMN`` for gold's new columns (DDL commits implicitly, so before the transaction); then
``BEGIN``, upsert, delete the keys gold no longer has, log the version, ``COMMIT`` (``ROLLBACK``
on any error). The staging table is dropped whatever happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import snowflake.connector
from snowflake.connector import SnowflakeConnection
from snowflake.connector.cursor import SnowflakeCursor

from medallion.lakehouse.clients.snowflake import SnowflakeSettings, connect_to
from medallion.lakehouse.errors import ConfigError, PublishError, WarehouseUnavailable
from medallion.lakehouse.serving import PUBLISH_LOG, Figures, GoldSnapshot, PublishResult
from medallion.lakehouse.serving.snowflake_sql import (
    Target,
    arrow_type,
    column_list,
    copy_statement,
    delete_statement,
    held_version_query,
    identifier,
    key_check_query,
    log_insert,
    log_table_ddl,
    merge_statement,
    quoted,
    snowflake_type,
    sum_expression,
)

__all__ = ["SnowflakeSink"]

log = logging.getLogger(__name__)

NAME = "snowflake"
STAGING_PREFIX = "_MEDALLION_STAGE_"
ROWS_PER_FILE = 500_000


@dataclasses.dataclass(frozen=True)
class _Columns:
    """A snapshot's columns as Snowflake names them: upper-case names, quoted names, types."""

    names: tuple[str, ...]
    quoted: tuple[str, ...]
    keys: tuple[str, ...]  # quoted
    types: tuple[str, ...]

    @classmethod
    def of(cls, snapshot: GoldSnapshot) -> _Columns:
        """Validated: plain distinct names, known types, at least one key among the columns."""
        names = tuple(identifier(column.name, "gold column") for column in snapshot.columns)
        keys = tuple(identifier(key, "gold key") for key in snapshot.keys)
        if not keys or not set(keys) <= set(names) or len(set(names)) != len(names):
            raise ConfigError(
                f"{snapshot.table}: expected distinct column names including the keys "
                f"{snapshot.keys}, found {snapshot.column_names}"
            )
        types = tuple(snowflake_type(column) for column in snapshot.columns)
        return cls(names, tuple(map(quoted, names)), tuple(map(quoted, keys)), types)


class SnowflakeSink:
    """``WarehouseSink`` over snowflake-connector-python, one session per call.

    ``rows_per_file`` bounds each staged Parquet file. Connecting is tried ``connect_attempts``
    times with jittered exponential backoff, then fails with ``WarehouseUnavailable``.
    """

    name = NAME

    def __init__(
        self,
        settings: SnowflakeSettings,
        *,
        rows_per_file: int = ROWS_PER_FILE,
        connect_attempts: int = 3,
        initial_wait_seconds: float = 0.5,
        max_wait_seconds: float = 5.0,
        login_timeout_seconds: int = 30,
    ) -> None:
        if rows_per_file < 1 or connect_attempts < 1:
            raise ConfigError(
                f"rows_per_file={rows_per_file}, connect_attempts={connect_attempts}: "
                "expected at least 1 each"
            )
        self.settings = settings
        self.rows_per_file = rows_per_file
        self.connect_attempts = connect_attempts
        self.initial_wait_seconds = initial_wait_seconds
        self.max_wait_seconds = max_wait_seconds
        self.login_timeout_seconds = login_timeout_seconds

    def published_version(self, target: str, gold_table: str) -> int | None:
        """The gold version ``target`` holds, from the publish log; None before the first."""
        where = Target.parse(target)
        with self._session() as cursor:
            return _held_version(cursor, where, gold_table)

    def publish(self, snapshot: GoldSnapshot, target: str) -> PublishResult:
        """Mirror ``snapshot`` into ``target``; skipped when it already holds that version."""
        started = time.monotonic()
        where = Target.parse(target)
        columns = _Columns.of(snapshot)
        with self._session() as cursor:
            existing = _columns_of(cursor, where)
            if existing and _held_version(cursor, where, snapshot.table) == snapshot.version:
                log.info("snowflake %s already holds %s version %d; skipped", where.name,
                         snapshot.table, snapshot.version)  # fmt: skip
                return PublishResult(NAME, where.name, snapshot.table, snapshot.version,
                                     skipped=True, seconds=time.monotonic() - started)  # fmt: skip
            try:
                result = self._publish(cursor, snapshot, where, columns, existing)
            except snowflake.connector.errors.Error as error:
                raise PublishError(
                    f"snowflake {where.name}: publishing {snapshot.table} version "
                    f"{snapshot.version} failed and its rows are unchanged; "
                    f"{type(error).__name__}: {error}"
                ) from error
        result = dataclasses.replace(result, seconds=time.monotonic() - started)
        log.info("snowflake %s: %s", where.name, result)
        return result

    def figures(self, target: str, key: str, sum_columns: Sequence[str]) -> Figures:
        """``Figures`` of ``target``: row count, distinct ``key`` count, exact column sums."""
        where = Target.parse(target)
        key_name = identifier(key, "key column")
        with self._session() as cursor:
            existing = _columns_of(cursor, where)
            if key_name not in existing:
                raise ConfigError(
                    f"snowflake {where.name}: expected a table with key column {key!r} in "
                    f"database {self.settings.database}, found columns {sorted(existing)}"
                )
            sums = []
            for column in sum_columns:
                name = identifier(column, "sum column")
                data_type, scale = existing.get(name, ("no such column", None))
                expression = sum_expression(name, data_type, scale)
                if expression is None:
                    raise ConfigError(
                        f"snowflake {where.name}: sum column {column!r} is {data_type}; "
                        "expected a NUMBER or FLOAT column"
                    )
                sums.append(expression)
            counts = ["COUNT(*)", f"COUNT(DISTINCT {quoted(key_name)})"]
            cursor.execute(f"SELECT {', '.join(counts + sums)} FROM {where.sql}")
            # An aggregate without GROUP BY always answers one row.
            values = list(cursor.fetchone() or (0, 0, *[None] * len(sums)))
        return Figures(
            rows=int(values[0]),
            distinct_keys=int(values[1]),
            sums={name: _exact(value) for name, value in zip(sum_columns, values[2:], strict=True)},
        )

    def _publish(
        self,
        cursor: SnowflakeCursor,
        snapshot: GoldSnapshot,
        target: Target,
        columns: _Columns,
        existing: dict[str, tuple[str, int | None]],
    ) -> PublishResult:
        """Create what is missing, stage, check keys, add columns, apply in one transaction."""
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(target.schema)}")
        if not existing:
            definition = column_list(columns.names, columns.types)
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {target.sql} ({definition})")
        cursor.execute(log_table_ddl(target))
        _drop_leftover_staging(cursor, target)
        run = f"{STAGING_PREFIX}{target.table}_{uuid.uuid4().hex[:12].upper()}"
        staging = target.sibling(run)
        cursor.execute(
            f"CREATE TRANSIENT TABLE {staging} ({column_list(columns.names, columns.types)})"
        )
        try:
            staged = self._stage(
                cursor, snapshot, target, staging, location=f"@{target.stage}/{run}/"
            )
            _check_keys(cursor, snapshot, target, staging, columns.keys)
            gained = [
                (gold.name, name, kind)
                for gold, name, kind in zip(snapshot.columns, columns.names, columns.types,
                                            strict=True)
                if existing and name not in existing
            ]  # fmt: skip
            for _, name, kind in gained:
                cursor.execute(f"ALTER TABLE {target.sql} ADD COLUMN {quoted(name)} {kind}")
            inserted, updated, deleted = self._apply(
                cursor, snapshot, target, staging, columns, staged
            )
        finally:
            with contextlib.suppress(snowflake.connector.errors.Error):
                cursor.execute(f"DROP TABLE IF EXISTS {staging}")
        return PublishResult(
            NAME, target.name, snapshot.table, snapshot.version, skipped=False,
            rows_staged=staged, inserted=inserted, updated=updated, deleted=deleted,
            added_columns=tuple(gold_name for gold_name, _, _ in gained),
        )  # fmt: skip

    def _stage(
        self,
        cursor: SnowflakeCursor,
        snapshot: GoldSnapshot,
        target: Target,
        staging: str,
        location: str,
    ) -> int:
        """Load the snapshot into ``staging``: Parquet files PUT to ``location``, one COPY."""
        cursor.execute(f"CREATE TEMPORARY STAGE IF NOT EXISTS {target.stage}")
        written = 0
        with tempfile.TemporaryDirectory(prefix="medallion-snowflake-") as directory:
            for path, rows in _parquet_files(snapshot, Path(directory), self.rows_per_file):
                cursor.execute(
                    f"PUT 'file://{path.as_posix()}' {location} "
                    "AUTO_COMPRESS = FALSE OVERWRITE = TRUE"
                )
                path.unlink()
                written += rows
        if written:
            cursor.execute(copy_statement(staging, location))
        cursor.execute(f"SELECT COUNT(*) FROM {staging}")
        staged = _first_int(cursor)
        if staged != written:
            raise PublishError(
                f"snowflake {target.name}: {staged} rows of {snapshot.table} version "
                f"{snapshot.version} were staged, expected the {written} rows written; "
                "its rows are unchanged"
            )
        return staged

    def _apply(
        self,
        cursor: SnowflakeCursor,
        snapshot: GoldSnapshot,
        target: Target,
        staging: str,
        columns: _Columns,
        staged: int,
    ) -> tuple[int, int, int]:
        """In one transaction: upsert, delete absent keys, log the version; counts of each."""
        keys, names = columns.keys, columns.quoted
        cursor.execute("BEGIN")
        try:
            cursor.execute(merge_statement(target.sql, staging, keys, names))
            counts = _counts(cursor)
            inserted = counts.get("number of rows inserted", 0)
            updated = counts.get("number of rows updated", 0)
            cursor.execute(delete_statement(target.sql, staging, keys))
            deleted = _counts(cursor)["number of rows deleted"]
            _record_publish(cursor, target, snapshot, staged)
            cursor.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(snowflake.connector.errors.Error):
                cursor.execute("ROLLBACK")
            raise
        return inserted, updated, deleted

    @contextlib.contextmanager
    def _session(self) -> Iterator[SnowflakeCursor]:
        """A cursor on a fresh connection, closed afterwards (an open transaction rolls back)."""
        connection = self._connect()
        try:
            yield connection.cursor()
        finally:
            connection.close()

    def _connect(self) -> SnowflakeConnection:
        """Connect with retries and backoff; ``WarehouseUnavailable`` after the last attempt."""
        settings = self.settings

        def unavailable(detail: str) -> WarehouseUnavailable:
            return WarehouseUnavailable(
                f"warehouse {NAME!r} unavailable at {settings.address} (account "
                f"{settings.account!r}, user {settings.user!r}, database {settings.database!r}) "
                f"after {self.connect_attempts} attempts; last error: {detail}"
            )

        return connect_to(
            settings,
            attempts=self.connect_attempts,
            initial_wait_seconds=self.initial_wait_seconds,
            max_wait_seconds=self.max_wait_seconds,
            login_timeout_seconds=self.login_timeout_seconds,
            network_timeout_seconds=None,  # a MERGE of a large gold table may run long
            unavailable=unavailable,
        )


def _first_int(cursor: SnowflakeCursor) -> int:
    """The first value of the next row as an int (0 when there is no row)."""
    row = cursor.fetchone()
    return 0 if row is None else int(row[0])


def _counts(cursor: SnowflakeCursor) -> dict[str, int]:
    """A DML statement's result row by column name (``number of rows inserted``: 3, ...)."""
    row = cursor.fetchone() or ()
    names = [description.name for description in cursor.description or []]
    return {name: int(value) for name, value in zip(names, row, strict=False)}


def _exact(value: Any) -> Decimal:
    """A SUM as a Decimal; the sum of no rows (NULL) is 0, as gold's figures count it."""
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(value)


def _drop_leftover_staging(cursor: SnowflakeCursor, target: Target) -> list[str]:
    """Drop the staging tables of ``target`` that a killed publish left behind; their names.

    A publish drops its own staging table when it ends, failed or not; one that was killed
    cannot. Publishes of one target run one at a time (their job's run lock), so any staging
    table of the target found before a publish starts is such a leftover.
    """
    prefix = f"{STAGING_PREFIX}{target.table}_"
    cursor.execute(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s "
        "AND STARTSWITH(TABLE_NAME, %s)",
        (target.schema, prefix),
    )
    leftovers = sorted(str(name) for (name,) in cursor.fetchall())
    for name in leftovers:
        log.warning("snowflake %s: dropping %s, left by an earlier publish that did not finish",
                    target.name, name)
        cursor.execute(f"DROP TABLE IF EXISTS {target.sibling(name)}")
    return leftovers


def _columns_of(cursor: SnowflakeCursor, target: Target) -> dict[str, tuple[str, int | None]]:
    """The target's columns in order: name → (data type, numeric scale); {} when it is missing."""
    cursor.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_SCALE FROM INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (target.schema, target.table),
    )
    return {str(name): (str(kind), scale) for name, kind, scale in cursor.fetchall()}


def _held_version(cursor: SnowflakeCursor, target: Target, gold_table: str) -> int | None:
    """The latest logged version of ``gold_table`` in ``target``; None without a log or row."""
    cursor.execute(
        "SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (target.schema, PUBLISH_LOG.upper()),
    )
    if not _first_int(cursor):
        return None
    cursor.execute(held_version_query(target), (target.name, gold_table))
    row = cursor.fetchone()
    return None if row is None else int(row[0])


def _check_keys(
    cursor: SnowflakeCursor,
    snapshot: GoldSnapshot,
    target: Target,
    staging: str,
    keys: Sequence[str],
) -> None:
    """PublishError unless every staged key is non-null and on one row only."""
    cursor.execute(key_check_query(staging, keys))
    row = cursor.fetchone()
    nulls, duplicated = (0, 0) if row is None else (int(row[0]), int(row[1]))
    if nulls or duplicated:
        raise PublishError(
            f"snowflake {target.name}: {snapshot.table} version {snapshot.version} has {nulls} "
            f"rows with a null key and {duplicated} keys on more than one row; expected "
            f"{snapshot.keys} unique and non-null. Its rows are unchanged"
        )


def _record_publish(
    cursor: SnowflakeCursor, target: Target, snapshot: GoldSnapshot, rows: int
) -> None:
    """Log that ``target`` now holds ``snapshot.version`` (inside the publish's transaction)."""
    cursor.execute(log_insert(target), (target.name, snapshot.table, snapshot.version, rows))


def _parquet_files(
    snapshot: GoldSnapshot, directory: Path, rows_per_file: int
) -> Iterator[tuple[Path, int]]:
    """Write the snapshot's batches, cast to their declared types, to Parquet files.

    Yields each closed file with its row count; a file is closed once it holds
    ``rows_per_file`` rows or more (a batch is never split). PublishError when a batch's
    columns are not the snapshot's or do not cast to their types.
    """
    schema = pa.schema([pa.field(column.name, arrow_type(column)) for column in snapshot.columns])
    writer: pq.ParquetWriter | None = None
    path, rows, number = directory, 0, 0
    for batch in snapshot.batches():
        if batch.schema.names != list(snapshot.column_names):
            raise PublishError(
                f"{snapshot.table} version {snapshot.version}: a batch has columns "
                f"{batch.schema.names}, expected {list(snapshot.column_names)}"
            )
        try:
            table = pa.Table.from_batches([batch]).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise PublishError(
                f"{snapshot.table} version {snapshot.version}: a batch does not cast to "
                f"{schema}: {error}"
            ) from error
        if writer is None:
            path = directory / f"part-{number:05d}.parquet"
            writer = pq.ParquetWriter(path, schema)
        writer.write_table(table)
        rows += table.num_rows
        if rows >= rows_per_file:
            writer.close()
            yield path, rows
            writer, rows, number = None, 0, number + 1
    if writer is not None:
        writer.close()
        yield path, rows
