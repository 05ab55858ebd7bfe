"""The Redshift sink: one gold version mirrored into ``<schema>.<table>``, in one transaction.

Locally PostgreSQL 15 stands in for Redshift: psycopg streams the snapshot's Arrow batches, as
CSV, into a temporary staging table with ``COPY ... FROM STDIN``. On AWS, ``redshift_connector``
runs the same SQL, and the snapshot reaches the staging table as Parquet files written under the
storage root (``s3://...``) and loaded with ``COPY ... IAM_ROLE ... FORMAT AS PARQUET``. The SQL
lives in ``medallion.lakehouse.serving.redshift_sql`` (what differs between the two databases is its
``Dialect``), the sessions and staging transports in
``medallion.lakehouse.serving.redshift_sessions``, settings and connecting in
``medallion.lakehouse.clients.redshift``.

A publish, on one connection:

1. read the publish log: when the target already holds this version, return ``skipped``;
2. in ONE transaction: stage the snapshot, check its keys are non-NULL and unique, create the
   schema, target and publish log when missing, lock the target (PostgreSQL), re-read the log (a
   concurrent publish may have won), add the columns gold gained, delete the keys gold no longer
   has, update matched keys whose values differ, insert new keys, record the version; commit.

Any error in 2 rolls back (the target, its columns and the log are as before; staging is a
temporary table) and raises ``PublishError`` naming the target and the step. A target column
gold no longer has is kept, NULL on new rows. Grain of the target: one row per gold key.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from medallion.lakehouse.clients.redshift import (
    ConnectFailed,
    RedshiftSettings,
    connect_postgres,
    connect_redshift,
    import_redshift_connector,
)
from medallion.lakehouse.errors import ConfigError, PublishError, WarehouseUnavailable
from medallion.lakehouse.serving import (
    PUBLISH_LOG,
    Figures,
    GoldColumn,
    GoldSnapshot,
    PublishResult,
)
from medallion.lakehouse.serving.redshift_sessions import (
    ConnectAttemptFailed,
    PostgresSession,
    RedshiftSession,
    StagingArea,
    WarehouseSession,
)
from medallion.lakehouse.serving.redshift_sql import (
    POSTGRES,
    REDSHIFT,
    Dialect,
    Statements,
    TableName,
    check_iam_role,
    quote,
)

log = logging.getLogger(__name__)

WAREHOUSE = "redshift"


class RedshiftSink:
    """``WarehouseSink`` for Redshift, and for PostgreSQL 15 standing in for it locally.

    ``open_session`` opens one connection and raises ``ConnectAttemptFailed`` when it cannot;
    connecting is retried with exponential backoff and jitter, then ``WarehouseUnavailable``.
    ``location`` names the warehouse in messages (host:port/database and user, never a secret).
    Build one with ``postgres`` or ``redshift`` from ``RedshiftSettings`` (a local stand-in's
    come from the local platform).
    """

    name = WAREHOUSE

    def __init__(
        self,
        open_session: Callable[[], WarehouseSession],
        location: str,
        dialect: Dialect,
        *,
        attempts: int = 4,
        initial_wait_seconds: float = 0.5,
        max_wait_seconds: float = 10.0,
    ) -> None:
        if attempts < 1:
            raise ConfigError(f"{WAREHOUSE} at {location}: attempts={attempts}, expected >= 1")
        self.open_session = open_session
        self.location = location
        self.statements = Statements(dialect)
        self.attempts = attempts
        self.initial_wait_seconds = initial_wait_seconds
        self.max_wait_seconds = max_wait_seconds

    @classmethod
    def postgres(
        cls,
        settings: RedshiftSettings,
        *,
        attempts: int = 4,
        initial_wait_seconds: float = 0.5,
        connect_timeout: int = 5,
    ) -> RedshiftSink:
        """A sink publishing to PostgreSQL through psycopg (sessions in UTC)."""

        def open_session() -> WarehouseSession:
            try:
                connection = connect_postgres(settings, connect_timeout=connect_timeout)
            except ConnectFailed as error:
                raise ConnectAttemptFailed(error.detail) from None
            return PostgresSession(connection)

        return cls(
            open_session,
            settings.location_with_user,
            POSTGRES,
            attempts=attempts,
            initial_wait_seconds=initial_wait_seconds,
        )

    @classmethod
    def redshift(
        cls,
        settings: RedshiftSettings,
        *,
        iam_role: str,
        staging_area: StagingArea,
        attempts: int = 4,
        initial_wait_seconds: float = 0.5,
        **options: Any,
    ) -> RedshiftSink:
        """A sink publishing to real Redshift through ``redshift_connector`` (``options`` go to
        its ``connect``); snapshots are staged as files in ``staging_area`` and loaded with
        ``COPY`` under ``iam_role``."""
        import_redshift_connector()  # a missing driver fails here, not at the first publish
        check_iam_role(iam_role)

        def open_session() -> WarehouseSession:
            try:
                connection = connect_redshift(settings, **options)
            except ConnectFailed as error:
                raise ConnectAttemptFailed(error.detail) from None
            return RedshiftSession(connection, staging_area, iam_role)

        return cls(
            open_session,
            settings.location_with_user,
            REDSHIFT,
            attempts=attempts,
            initial_wait_seconds=initial_wait_seconds,
        )

    def published_version(self, target: str, gold_table: str) -> int | None:
        """The gold version ``target`` holds, from the publish log; None before the first."""
        table = TableName.parse(target)
        session = self._connect()
        try:
            return self._held_version(session, table, gold_table)
        except Exception as error:
            raise PublishError(
                f"{self.name} {table} at {self.location}: reading the publish log failed; "
                f"{_describe(error)}"
            ) from error
        finally:
            session.close()

    def publish(self, snapshot: GoldSnapshot, target: str) -> PublishResult:
        """Mirror ``snapshot`` into ``target`` (see the module docstring); no-op when held."""
        started = time.monotonic()
        table = TableName.parse(target)
        self._check_snapshot(snapshot)
        session = self._connect()
        try:
            result = self._mirror(session, snapshot, table, started)
        finally:
            session.close()
        if not result.skipped:
            log.info(
                "%s %s at %s: %s version %d published in %.1fs: %d staged, %d inserted, "
                "%d updated, %d deleted, columns added %s",
                self.name, table, self.location, snapshot.table, snapshot.version,
                result.seconds, result.rows_staged, result.inserted, result.updated,
                result.deleted, list(result.added_columns),
            )  # fmt: skip
        return result

    def figures(self, target: str, key: str, sum_columns: Sequence[str]) -> Figures:
        """``Figures`` of ``target``: row count, distinct ``key`` count, exact column sums."""
        table = TableName.parse(target)
        statement = self.statements.figures(table, key, sum_columns)
        session = self._connect()
        try:
            rows, distinct_keys, *sums = session.query(statement)[0]
        except Exception as error:
            raise PublishError(
                f"{self.name} {table} at {self.location}: reading its figures failed; "
                f"{_describe(error)}"
            ) from error
        finally:
            session.close()
        return Figures(
            rows=int(rows),
            distinct_keys=int(distinct_keys),
            sums={name: _exact(value) for name, value in zip(sum_columns, sums, strict=True)},
        )

    def _connect(self) -> WarehouseSession:
        """A session, after at most ``attempts`` tries; ``WarehouseUnavailable`` otherwise."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.initial_wait_seconds,
                max=self.max_wait_seconds,
                jitter=self.initial_wait_seconds,
            ),
            retry=retry_if_exception_type(ConnectAttemptFailed),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self.open_session)
        except ConnectAttemptFailed as error:
            raise WarehouseUnavailable(
                f"warehouse {self.name!r} at {self.location}: no connection after "
                f"{self.attempts} attempt(s); last error: {error.detail}"
            ) from None

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s at %s: connection attempt %d failed (%s); retrying",
            self.name, self.location, state.attempt_number, error,
        )  # fmt: skip

    def _check_snapshot(self, snapshot: GoldSnapshot) -> None:
        """``ConfigError`` unless the snapshot's keys, names and types can be published."""
        names = snapshot.column_names
        if not snapshot.keys or not set(snapshot.keys) <= set(names):
            raise ConfigError(
                f"{snapshot.table} version {snapshot.version}: expected keys among its columns "
                f"{list(names)}, found keys {list(snapshot.keys)}"
            )
        if len(set(names)) != len(names):
            raise ConfigError(
                f"{snapshot.table} version {snapshot.version}: expected unique column names, "
                f"found {list(names)}"
            )
        for column in snapshot.columns:
            quote(column.name)
            self.statements.dialect.column_type(column)

    def _mirror(
        self, session: WarehouseSession, snapshot: GoldSnapshot, target: TableName, started: float
    ) -> PublishResult:
        """Steps 1 and 2 of the module docstring, on ``session``."""
        sql, keys, names = self.statements, snapshot.keys, snapshot.column_names
        step = "reading the publish log"
        try:
            if self._held_version(session, target, snapshot.table) == snapshot.version:
                session.rollback()
                return self._skipped(snapshot, target, started)
            step = "staging the snapshot"
            session.execute(sql.create_staging(snapshot.columns))
            staged = session.load_staging(snapshot)
            step = "checking the staged keys"
            self._check_staged_keys(session, snapshot)
            step = "creating the target"
            session.execute(sql.create_schema(target))
            session.execute(sql.create_table(target, snapshot.columns, keys))
            session.execute(sql.create_publish_log(target))
            lock = sql.lock(target)
            if lock:
                session.execute(lock)
            step = "re-reading the publish log"
            if self._held_version(session, target, snapshot.table) == snapshot.version:
                session.rollback()  # a concurrent publish of the same version committed first
                return self._skipped(snapshot, target, started)
            step = "adding columns"
            added = self._add_columns(session, target, snapshot.columns)
            step = "deleting keys gold no longer has"
            deleted = session.execute(sql.delete_absent(target, keys))
            step = "updating changed rows"
            update = sql.update_changed(target, keys, names)
            updated = session.execute(update) if update else 0
            step = "inserting new keys"
            inserted = session.execute(sql.insert_new(target, keys, names))
            step = "recording the publish"
            session.execute(
                sql.record_publish(target),
                [str(target), snapshot.table, snapshot.version, staged, datetime.now(UTC)],
            )
            session.execute(sql.drop_staging())
            step = "committing"
            session.commit()
        except Exception as error:
            with contextlib.suppress(Exception):  # a lost connection rolls back by itself
                session.rollback()
            raise PublishError(
                f"{self.name} {target} at {self.location}: publishing {snapshot.table} version "
                f"{snapshot.version} failed while {step}; rolled back, the target is unchanged; "
                f"{_describe(error)}"
            ) from error
        return PublishResult(
            warehouse=self.name,
            target=str(target),
            gold_table=snapshot.table,
            version=snapshot.version,
            skipped=False,
            rows_staged=staged,
            inserted=inserted,
            updated=updated,
            deleted=deleted,
            added_columns=added,
            seconds=time.monotonic() - started,
        )

    def _held_version(
        self, session: WarehouseSession, target: TableName, gold_table: str
    ) -> int | None:
        """The version the log says ``target`` holds; None without a log or a row."""
        sql = self.statements
        if not session.query(sql.table_exists(), [target.schema, PUBLISH_LOG])[0][0]:
            return None
        rows = session.query(sql.held_version(target), [str(target), gold_table])
        return int(rows[0][0]) if rows else None

    def _check_staged_keys(self, session: WarehouseSession, snapshot: GoldSnapshot) -> None:
        """``PublishError`` unless every staged key is non-NULL and staged once."""
        nulls = int(session.query(self.statements.count_null_keys(snapshot.keys))[0][0])
        duplicated = int(session.query(self.statements.count_duplicated_keys(snapshot.keys))[0][0])
        if nulls or duplicated:
            raise PublishError(
                f"expected unique, non-NULL keys ({', '.join(snapshot.keys)}) in "
                f"{snapshot.table} version {snapshot.version}, found {nulls} row(s) with a NULL "
                f"key and {duplicated} key(s) staged more than once"
            )

    def _add_columns(
        self, session: WarehouseSession, target: TableName, columns: Sequence[GoldColumn]
    ) -> tuple[str, ...]:
        """Add the gold columns the target lacks; returns their names, in gold's order."""
        existing = {
            str(row[0])
            for row in session.query(
                self.statements.existing_columns(), [target.schema, target.table]
            )
        }
        added = [column for column in columns if column.name not in existing]
        for column in added:
            session.execute(self.statements.add_column(target, column))
        return tuple(column.name for column in added)

    def _skipped(self, snapshot: GoldSnapshot, target: TableName, started: float) -> PublishResult:
        log.info(
            "%s %s: already holds %s version %d; nothing published",
            self.name, target, snapshot.table, snapshot.version,
        )  # fmt: skip
        return PublishResult(
            warehouse=self.name,
            target=str(target),
            gold_table=snapshot.table,
            version=snapshot.version,
            skipped=True,
            seconds=time.monotonic() - started,
        )


def _exact(value: Any) -> Decimal:
    """A sum as an exact Decimal: NULL (no rows) is 0; a float keeps its exact binary value."""
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(value)


def _describe(error: BaseException) -> str:
    """An error for a message: ours as they are, a driver's with its class name."""
    if isinstance(error, PublishError | ConfigError):
        return str(error)
    return f"{type(error).__name__}: {str(error).strip()}"
