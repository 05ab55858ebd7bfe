"""The lakehouse's storage layout and table I/O: the one place that reads and writes tables.

Locally, the layout under the storage root *is* the catalog: table ``<schema>.<name>`` lives at
``<storage_root>/<schema>/<name>`` as a Delta table, and every Spark session registers what it
finds there (``register_tables``), so ``spark.table("gold.x")`` works in any later notebook, in any
process, with no metastore database to lock. With a catalog (always on Databricks), tables are
managed Unity Catalog tables ``<catalog>.<schema>.<name>`` and no table path is used; locally
that mode runs against Spark's own session catalog (``spark_catalog``), the stand-in for tests.

Reads are checked against the bundle's roles (``medallion.lakehouse.governance``) when the lakehouse
has a role: a notebook gets one from ``$MEDALLION_ROLE``; without one (the pipeline's own identity)
nothing is checked. On Databricks Unity Catalog enforces the same grants itself.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from medallion.lakehouse.environment import (
    DATABRICKS,
    Environment,
    Target,
    resolve_target,
    table_catalog,
)
from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.governance import Roles, declared_roles, role_from_environment
from medallion.lakehouse.storage import StorageRoot

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
T = TypeVar("T")
SCHEMAS = ("bronze", "silver", "gold")
# A step that queries tables this small (their data files, from the Delta log) several times
# reads them once and keeps them in memory (``computed_once``): every query that scans a Delta
# table first lists its files, with a Spark job of its own, so a lookup or source scanned by each
# check of a step cost a listing per check (gold's fact_customer_360 listed silver.fact_orders 20
# times per build). Measured at demo scale, one step at a time on a warm server:
# fact_customer_360 4.2 -> 3.0 s, orders_daily 3.3 -> 2.4 s, fx_daily_change 1.7 -> 1.4 s,
# silver.fact_orders 2.8 -> 2.6 s, the silver breaker 1.6 -> 1.5 s. Larger tables are scanned by
# each query, where column pruning and data skipping pay.
SMALL_TABLE_BYTES = 32 * 1024 * 1024
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def split_table_name(table: str) -> tuple[str, str]:
    """``"bronze.fx_rates"`` -> ``("bronze", "fx_rates")``, rejecting anything else."""
    parts = table.split(".")
    if len(parts) != 2 or not all(_IDENTIFIER.match(part) for part in parts):
        raise ConfigError(
            f"table name {table!r}: expected '<schema>.<table>' in lower snake_case, "
            "e.g. 'silver.fx_rates'"
        )
    return parts[0], parts[1]


def table_path(storage_root: StorageRoot, table: str) -> Path:
    """Where a table's Delta files live under the storage root."""
    schema, name = split_table_name(table)
    return storage_root / schema / name


def discover_tables(storage_root: StorageRoot) -> list[str]:
    """Every Delta table under the storage root, as ``schema.table`` names, sorted."""
    root = storage_root.path
    found = []
    for log_dir in root.glob("*/*/_delta_log"):
        schema, name = log_dir.parent.parent.name, log_dir.parent.name
        if schema.startswith("_") or schema == "raw":
            continue
        if _IDENTIFIER.match(schema) and _IDENTIFIER.match(name) and has_commit(log_dir):
            found.append(f"{schema}.{name}")
    return sorted(found)


COMMIT_FILE = re.compile(r"\d{20}\.json")  # a Delta commit: <version>.json, 20 digits


def has_commit(log_dir: Path) -> bool:
    """True when a Delta log holds a commit or checkpoint (a failed first write leaves none)."""
    return log_dir.is_dir() and any(
        entry.name[:1].isdigit() and entry.name.endswith((".json", ".parquet"))
        for entry in log_dir.iterdir()
    )


def register_table(spark: SparkSession, storage_root: StorageRoot, table: str) -> None:
    """Make ``table`` resolve, in this session's catalog, to its location under this root.

    One catalog round trip when the name already points there (each task's new session asks
    once per table; most tables were registered by an earlier task), three when it must be
    created, four when it pointed at another root's table; afterwards this process remembers,
    per session, where it pointed the name (every registration goes through here), and asks no
    more.
    """
    schema, _ = split_table_name(table)
    location = table_path(storage_root, table)
    key = (_session_key(spark), table)
    if _REGISTERED.get(key) == location:
        return
    known, current = _catalog_location(spark, table)
    if current == location:
        _REGISTERED[key] = location
        return
    if known:
        # The name points at another storage root's table (a second Lakehouse in this session).
        # Registered tables are external (created with LOCATION): DROP forgets the name only.
        spark.sql(f"DROP TABLE IF EXISTS {table}")
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    try:
        with expecting_errors("TABLE_OR_VIEW_ALREADY_EXISTS"):
            spark.sql(f"CREATE TABLE {table} USING DELTA LOCATION '{location}'")
    except Exception as error:  # pyspark raises its classic or Connect AnalysisException
        # Parallel tasks register the same tables; the one that lost the race finds it done.
        if "ALREADY_EXISTS" not in str(error) or registered_location(spark, table) != location:
            raise
    _REGISTERED[key] = location


# (session, table) -> the location this process registered the name at, in that session.
_REGISTERED: dict[tuple[str, str], Path] = {}


def _session_key(spark: SparkSession) -> str:
    """What identifies the catalog a session sees: its Connect session id, or the session."""
    return str(getattr(spark, "session_id", None) or id(spark))


def registered_location(spark: SparkSession, table: str) -> Path | None:
    """Where the session's catalog says a (local, file-based) table lives (None: nowhere)."""
    return _catalog_location(spark, table)[1]


# pyspark logs each SQL error it raises (ERROR, with the JVM's stack trace) on these loggers of
# its own, which write to stderr: into a notebook's output, where a person reads it.
QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")
_expected_errors = threading.local()


class _ExpectedErrorFilter(logging.Filter):
    """Drops pyspark's log record of an error the running thread said it expects."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = getattr(record, "context", None) or {}
        condition = context.get("errorClass") if isinstance(context, dict) else None
        return condition not in getattr(_expected_errors, "conditions", frozenset())


_EXPECTED_ERROR_FILTER = _ExpectedErrorFilter()


@contextmanager
def expecting_errors(*conditions: str) -> Iterator[None]:
    """Within the block, in this thread, pyspark does not log a raised error of ``conditions``
    (error classes such as ``TABLE_OR_VIEW_NOT_FOUND``): the block expects and handles it.

    The error is raised as ever; only its log record, a stack trace that reads like a failure,
    is dropped. Other threads, and other errors, are logged as pyspark logs them.
    """
    from pyspark.logger import PySparkLogger

    for name in QUERY_CONTEXT_LOGGERS:  # pyspark's own logger class: it passes errorClass
        logger = PySparkLogger.getLogger(name)
        if _EXPECTED_ERROR_FILTER not in logger.filters:
            logger.addFilter(_EXPECTED_ERROR_FILTER)
    outer: frozenset[str] = getattr(_expected_errors, "conditions", frozenset())
    _expected_errors.conditions = outer | frozenset(conditions)
    try:
        yield
    finally:
        _expected_errors.conditions = outer


def _catalog_location(spark: SparkSession, table: str) -> tuple[bool, Path | None]:
    """Whether the session's catalog knows ``table``, and where it says the table lives (a
    local path; None for none or another scheme): one ``SHOW TABLE EXTENDED``.

    A name not registered yet is an empty answer, not a failed query: in a classic session
    Spark's own listeners log every failed query (ERROR, with a stack trace) once a step has
    observed a frame, and a local notebook shows that as a failure. Only a missing schema
    still fails, and is expected.
    """
    from pyspark.errors import AnalysisException

    schema, name = split_table_name(table)
    try:
        with expecting_errors("SCHEMA_NOT_FOUND"):
            rows = spark.sql(f"SHOW TABLE EXTENDED IN {schema} LIKE '{name}'").collect()
    except AnalysisException as error:
        if error.getCondition() == "SCHEMA_NOT_FOUND":
            return False, None
        raise
    # LIKE matches case-insensitively, and the answer also lists temporary views.
    found = [row for row in rows if row["tableName"] == name and not row["isTemporary"]]
    if not found:
        return False, None
    prefix = "Location: "
    locations = [line.removeprefix(prefix) for line in str(found[0]["information"]).splitlines()
                 if line.startswith(prefix)]
    if not locations:
        return True, None
    location = urlsplit(locations[0])
    return True, Path(location.path) if location.scheme in ("", "file") else None


def register_tables(spark: SparkSession, storage_root: StorageRoot) -> list[str]:
    """Register every table found under the storage root; returns their names."""
    for schema in SCHEMAS:
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    tables = discover_tables(storage_root)
    for table in tables:
        register_table(spark, storage_root, table)
    return tables


@dataclass(frozen=True)
class Commit:
    """One entry of a Delta table's history: its version, operation and parameters."""

    version: int
    operation: str
    parameters: Mapping[str, str]

    @property
    def rewrites_table(self) -> bool:
        """True for a commit that replaced the table's rows wholesale (an overwrite, a replace,
        a restore), after which a change feed describes no increment."""
        if self.operation in ("WRITE", "CREATE OR REPLACE TABLE AS SELECT"):
            return self.parameters.get("mode") == "Overwrite"
        return self.operation in _REWRITES


_REWRITES = ("REPLACE TABLE AS SELECT", "CREATE OR REPLACE TABLE", "REPLACE TABLE",
             "RESTORE", "TRUNCATE")


def _checksum_table_size(checksum: Path) -> int | None:
    """``tableSizeBytes`` of a Delta version checksum file; None when it is missing or
    unreadable (not yet written, or cut short)."""
    try:
        content = json.loads(checksum.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    size = content.get("tableSizeBytes") if isinstance(content, dict) else None
    return size if isinstance(size, int) else None


def is_small_size(size_in_bytes: int) -> bool:
    """Whether tables holding ``size_in_bytes`` together are small: under ``SMALL_TABLE_BYTES``."""
    return size_in_bytes < SMALL_TABLE_BYTES


@dataclass(frozen=True)
class Lakehouse:
    """Reads and writes the lakehouse's tables, locally by path, on Databricks by UC name.

    With a ``role``, ``read`` raises AccessDenied for a table outside the schemas ``roles``
    grants it; ``role=None`` reads everything (the pipeline's own service identity).
    """

    spark: SparkSession
    storage_root: StorageRoot
    catalog: str | None = None
    role: str | None = None
    roles: Roles | None = None

    def __post_init__(self) -> None:
        if self.role is not None:
            if self.roles is None:
                raise ConfigError(
                    f"Lakehouse role {self.role!r} needs the declared roles: pass "
                    "roles=governance.declared_roles(), or use Lakehouse.open"
                )
            self.roles.readable(self.role)  # an unknown role fails here, not at the first read

    @classmethod
    def open(
        cls,
        spark: SparkSession,
        storage_root: StorageRoot,
        catalog: str | None = None,
        role: str | None = None,
        *,
        target: Target | None = None,
    ) -> Lakehouse:
        """A lakehouse rooted at ``storage_root``; its tables in ``catalog`` when one is given.

        This is where the table layout is chosen, once. With a catalog (a job's ``catalog``
        parameter) tables are managed tables ``<catalog>.<schema>.<table>``, as Unity Catalog
        needs; the storage root (a volume on Databricks) then holds only the raw zone and run
        state. Without one, a table is a Delta folder ``<storage_root>/<schema>/<table>``: the
        local layout, which Databricks refuses (a volume is no table location).

        ``target`` is the resolved environment's (default: ``resolve_target()``); on
        ``databricks`` a catalog is required. ``role`` defaults to ``$MEDALLION_ROLE``; its
        grants come from this checkout's bundle. On Databricks no role is applied here: Unity
        Catalog checks the grants of whoever runs.
        """
        target = target or resolve_target()
        catalog = table_catalog(target, catalog)
        if target == DATABRICKS:
            return cls(spark, storage_root, catalog)
        role = role or role_from_environment()
        roles = declared_roles() if role is not None else None
        return cls(spark, storage_root, catalog, role, roles)

    @classmethod
    def in_environment(
        cls, spark: SparkSession, environment: Environment, role: str | None = None
    ) -> Lakehouse:
        """The lakehouse of a resolved environment: its storage root, catalog and target."""
        return cls.open(spark, environment.storage_root, environment.catalog, role,
                        target=environment.target)

    def name(self, table: str) -> str:
        """The name Spark SQL knows the table by."""
        split_table_name(table)
        return f"{self.catalog}.{table}" if self.catalog else table

    def path(self, table: str) -> Path:
        """The table's location under the storage root (local only)."""
        return table_path(self.storage_root, table)

    def tables(self, schema: str) -> list[str]:
        """The tables of ``schema`` (``schema.table`` names, sorted): by name in the catalog, or
        the Delta folders under the storage root."""
        if self.catalog:  # SHOW TABLES: Catalog.listTables fails on Delta tables locally
            listed = self.spark.sql(f"SHOW TABLES IN {self.catalog}.{schema}").collect()
            return sorted(f"{schema}.{row['tableName']}" for row in listed
                          if not row["isTemporary"])
        return [name for name in discover_tables(self.storage_root)
                if name.startswith(f"{schema}.")]

    @property
    def raw_root(self) -> Path:
        """The raw landing zone."""
        return self.storage_root.raw

    def exists(self, table: str) -> bool:
        """True when the table has been written at least once (its log holds a commit).

        A first write that failed leaves a ``_delta_log`` directory with no commit in it: that
        is no table, and the next run creates it again.
        """
        if self.catalog:
            return bool(self.spark.catalog.tableExists(self.name(table)))
        return has_commit(self.path(table) / "_delta_log")

    def read(self, table: str, *, version: int | None = None) -> DataFrame:
        """The table's current version (or Delta ``version``); AccessDenied when the
        lakehouse's role may not read it."""
        name = self._readable(table)
        if version is None:
            return self.spark.table(name)
        return self.spark.sql(f"SELECT * FROM {name} VERSION AS OF {int(version)}")

    def history(self, table: str, *, limit: int) -> list[Commit]:
        """The table's latest ``limit`` commits, newest first."""
        rows = (
            self.spark.sql(f"DESCRIBE HISTORY {self._readable(table)} LIMIT {int(limit)}")
            .select("version", "operation", "operationParameters")
            .collect()
        )
        return [
            Commit(int(row["version"]), row["operation"], dict(row["operationParameters"] or {}))
            for row in rows
        ]

    def version(self, table: str) -> int:
        """The table's latest Delta version.

        Locally, the newest commit file's number in its ``_delta_log`` (Delta names each commit
        ``<version>.json``, zero-padded to 20 digits, and never removes the latest): no query,
        where ``DESCRIBE HISTORY`` costs a gold step ~0.1 s a table. In a catalog, its history.
        """
        if not self.catalog:
            self._check_read(table)
            newest = self._newest_commit(table)
            if newest is not None:
                return newest
        return self.history(table, limit=1)[0].version

    def size_in_bytes(self, table: str, *, version: int | None = None) -> int:
        """The bytes of the table's data files at ``version`` (default: the current one), from
        the Delta log: no data read.

        Locally, the ``tableSizeBytes`` of that version's checksum (``<version>.crc``, which
        Delta writes after each commit): no query. The first
        ``DESCRIBE DETAIL`` of a table version rebuilds its snapshot's state from the log:
        0.6-1.4 s a table at the at-scale benchmark's scale 1, where ``silver.fact_orders``' first
        build asks three sizes. In a catalog, or before that checksum is written,
        ``DESCRIBE DETAIL`` (of the current version).
        """
        if not self.catalog:
            self._check_read(table)
            if version is None:
                version = self._newest_commit(table)
            if version is not None:
                checksum = self.path(table) / "_delta_log" / f"{version:020d}.crc"
                size = _checksum_table_size(checksum)
                if size is not None:
                    return size
        detail = self.spark.sql(f"DESCRIBE DETAIL {self._readable(table)}").first()
        return int(detail["sizeInBytes"]) if detail is not None else 0

    def _newest_commit(self, table: str) -> int | None:
        """The newest commit's version in the table's local ``_delta_log``; None without one."""
        log_dir = self.path(table) / "_delta_log"
        if not log_dir.is_dir():
            return None
        return max((int(entry.name[:-5]) for entry in log_dir.iterdir()
                    if COMMIT_FILE.fullmatch(entry.name)), default=None)

    def is_small(self, *tables: str) -> bool:
        """Whether the ``tables``' data files hold less than ``SMALL_TABLE_BYTES`` together."""
        return is_small_size(sum(self.size_in_bytes(table) for table in tables))

    def changes(self, table: str, *, after: int, through: int) -> DataFrame:
        """The table's change data feed of versions ``after`` + 1 to ``through``: its rows as
        inserted, deleted, and before and after each update (``_change_type``).

        Needs ``delta.enableChangeDataFeed`` over the whole range; Delta refuses the read when
        a version in it was written without.
        """
        if through <= after:  # nothing committed since: no changes, in the feed's shape
            from pyspark.sql import functions as sf

            return self.read(table, version=through).limit(0).select(
                "*",
                sf.lit(None).cast("string").alias("_change_type"),
                sf.lit(None).cast("long").alias("_commit_version"),
                sf.lit(None).cast("timestamp").alias("_commit_timestamp"),
            )
        feed = (
            self.spark.read.option("readChangeFeed", "true")
            .option("startingVersion", int(after) + 1)
            .option("endingVersion", int(through))
            .table(self._readable(table))
        )
        feed.columns  # noqa: B018  # analysed now: a Spark Connect client refuses the range here
        return feed

    def set_properties(self, table: str, properties: Mapping[str, str]) -> bool:
        """Set the table properties it does not have yet (one ``ALTER TABLE``); True if any."""
        name = self.name(table)
        current = {
            row["key"]: row["value"]
            for row in self.spark.sql(f"SHOW TBLPROPERTIES {name}").collect()
        }
        missing = {key: value for key, value in properties.items() if current.get(key) != value}
        if not missing:
            return False
        assignments = ", ".join(f"'{key}' = '{value}'" for key, value in missing.items())
        retry_on_conflict(
            lambda: self.spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ({assignments})"), table
        )
        return True

    def _check_read(self, table: str) -> None:
        """Raise AccessDenied when the lakehouse's role may not read ``table``."""
        if self.role is not None and self.roles is not None:
            self.roles.check_read(self.role, table)

    def _readable(self, table: str) -> str:
        """The table's SQL name, after the role check (and registration by path, locally)."""
        name = self.name(table)
        self._check_read(table)
        if not self.catalog:
            register_table(self.spark, self.storage_root, table)
        return name

    def write(
        self,
        frame: DataFrame,
        table: str,
        *,
        mode: str = "overwrite",
        partition_by: Sequence[str] = (),
        replace_where: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        """Write ``frame`` as the table (or the ``replace_where`` slice of it) and register it.

        ``properties`` (``delta.*`` table properties, CHECK constraints among them) are set in
        the same commit; Delta checks the written rows against any constraint among them.
        """
        if self.catalog:
            self._write_managed(frame, table, mode, partition_by, replace_where, properties)
            return
        writer = frame.write.format("delta").mode(mode).options(**(properties or {}))
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if replace_where is not None:
            writer = writer.option("replaceWhere", replace_where)
        elif mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        retry_on_conflict(lambda: writer.save(str(self.path(table))), table)
        register_table(self.spark, self.storage_root, table)

    def _write_managed(
        self,
        frame: DataFrame,
        table: str,
        mode: str,
        partition_by: Sequence[str],
        replace_where: str | None,
        properties: Mapping[str, str] | None,
    ) -> None:
        """``write`` for a catalog table: one commit of ``frame`` into an existing table.

        A missing table is first created empty, with the frame's schema, partitioning and
        ``properties``, and so is a table whose schema a full overwrite changes: Delta runs
        the query of a ``CREATE``/``REPLACE TABLE ... AS SELECT`` in an execution of its own,
        whose observed metrics (``spark.counted_while``) never reach the caller. The rows are
        then written in the caller's execution: an append, or an overwrite of the rows
        ``replace_where`` selects (all of them without one).
        """
        from pyspark.sql import functions as sf

        name = self.name(table)
        full_overwrite = mode == "overwrite" and replace_where is None
        if not self.exists(table):
            self._create_empty(frame, table, partition_by, properties, mode="ignore")
        elif full_overwrite and (
            frame.schema.simpleString() != self.spark.table(name).schema.simpleString()
        ):
            # Readers see an empty table between these two commits; only a schema change
            # (new code) comes this way.
            self._create_empty(frame, table, partition_by, properties, mode="overwrite")
        writer = frame.writeTo(name)
        if mode == "append":
            retry_on_conflict(writer.append, table)
        elif mode == "overwrite":
            condition = sf.expr(replace_where) if replace_where is not None else sf.lit(True)
            retry_on_conflict(lambda: writer.overwrite(condition), table)
        else:
            raise ConfigError(f"{table}: write mode {mode!r}: expected 'overwrite' or 'append'")

    def _create_empty(
        self,
        frame: DataFrame,
        table: str,
        partition_by: Sequence[str],
        properties: Mapping[str, str] | None,
        *,
        mode: str,
    ) -> None:
        """(Re)create the catalog table with ``frame``'s schema and no rows (no ``LOCATION``).

        The empty rows are a frame of their own: ``frame`` may carry an observation, which its
        first action (this one) would otherwise take.
        """
        empty = self.spark.createDataFrame([], frame.schema)
        writer = empty.write.format("delta").mode(mode).options(**(properties or {}))
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        retry_on_conflict(lambda: writer.saveAsTable(self.name(table)), table)

    def merge(
        self,
        updates: DataFrame,
        table: str,
        *,
        keys: Sequence[str],
        partition_by: Sequence[str] = (),
        sequence_by: Sequence[str] = (),
        keep_current_when_null: Sequence[str] = (),
        compare_columns: Sequence[str] | None = None,
        held: DataFrame | None = None,
        broadcast: bool = False,
    ) -> None:
        """Upsert ``updates`` into the table on ``keys``: changed rows update, new rows insert.

        Rows whose values already match are left untouched, so re-running a load is a no-op.
        With ``sequence_by`` (compared left to right), a row only replaces a current row that is
        older, or as old and different: a late-arriving older version never wins. Columns in
        ``keep_current_when_null`` keep their current value when the update has none (a CDC
        event that does not carry them). ``compare_columns`` (default: every non-key column)
        decides what counts as a change; leave out metadata such as ``_ingest_ts`` so an
        identical record landed again does not rewrite the row. The first write creates the
        table.

        ``broadcast``: ``updates`` are few enough to send whole to every task (a day's rows).
        The MERGE then finds the files they touch without shuffling the table's rows: its
        source is too wide for Spark to broadcast by its size estimate alone (`make bench` at
        scale 10, silver.fact_events' day 2: 463k new events into 50M; alternated in one
        session, warm: 22.3-22.7 s shuffled, 10.3-12.3 s broadcast).

        ``held``: keys of ``updates`` the caller found the table holding (a read of it in the
        same step), with their rows few enough to send whole to every task. Those rows are
        merged first, by a MERGE without an insert clause: Delta joins the files it touches
        with them, broadcast, in an inner join. A MERGE that may insert joins them right-outer,
        which can broadcast only the table, so every row of every file it touches is shuffled
        (`make bench` at scale 10, silver.fact_orders' day 2: 60k updates and 61k new orders
        into 13M rows; alternated in one session, warm: one MERGE 27.0-29.8 s, split 17.7-23.8
        s). The other rows follow in the full MERGE, which inserts them and still updates a key
        a concurrent writer added meanwhile. Two commits instead of one, each idempotent. A
        held key must stay in the table until then (nothing deletes a silver table's rows; a
        key gone would lose its rows).
        """
        from pyspark.sql import functions as sf

        if not self.exists(table):
            self.write(updates, table, mode="overwrite", partition_by=partition_by)
            return
        if not self.catalog:
            register_table(self.spark, self.storage_root, table)
        merge = functools.partial(
            self._merge, table=table, keys=keys, sequence_by=sequence_by,
            keep_current_when_null=keep_current_when_null, compare_columns=compare_columns)
        if held is not None:
            matched = sf.broadcast(held.select(*keys))
            merge(sf.broadcast(updates.join(matched, list(keys), "left_semi")), insert=False)
            updates = updates.join(matched, list(keys), "left_anti")
        merge(sf.broadcast(updates) if broadcast else updates, insert=True)

    def _merge(
        self,
        updates: DataFrame,
        *,
        table: str,
        keys: Sequence[str],
        sequence_by: Sequence[str],
        keep_current_when_null: Sequence[str],
        compare_columns: Sequence[str] | None,
        insert: bool,
    ) -> None:
        """One MERGE of ``updates`` into the existing table (``merge``); ``insert``: with the
        clause that inserts a new key's row."""
        target = self.name(table)
        view = f"_merge_updates_{split_table_name(table)[1]}"
        updates.createOrReplaceTempView(view)
        columns = updates.columns
        compared = [c for c in (compare_columns or columns) if c not in keys]
        on = " AND ".join(f"t.`{key}` = s.`{key}`" for key in keys)
        changed = " OR ".join(f"NOT (t.`{col}` <=> s.`{col}`)" for col in compared) or "FALSE"
        condition = f"({changed})"
        if sequence_by:
            condition = f"({_newer(sequence_by)} OR ({_same(sequence_by)} AND {condition}))"
        assignments = ", ".join(
            f"t.`{col}` = coalesce(s.`{col}`, t.`{col}`)"
            if col in keep_current_when_null
            else f"t.`{col}` = s.`{col}`"
            for col in columns
        )
        statement = (
            f"MERGE INTO {target} t USING {view} s ON {on} "
            f"WHEN MATCHED AND {condition} THEN UPDATE SET {assignments}"
        )
        if insert:
            insert_cols = ", ".join(f"`{col}`" for col in columns)
            insert_vals = ", ".join(f"s.`{col}`" for col in columns)
            statement += f" WHEN NOT MATCHED THEN INSERT ({insert_cols}) VALUES ({insert_vals})"
        retry_on_conflict(lambda: self.spark.sql(statement), table)  # a MERGE is idempotent
        self.spark.catalog.dropTempView(view)

    def replace_keys(
        self, rows: DataFrame, table: str, *, keys: Sequence[str], replaced: DataFrame
    ) -> None:
        """Make the table's rows of the ``replaced`` keys exactly ``rows``, leaving the others.

        One MERGE on ``keys`` (NULL matching NULL): a row that differs from the table's is
        updated, a new key inserted, and a replaced key ``rows`` lacks deleted. ``rows`` holds
        at most one row per key, each among ``replaced``'s keys (``replaced``: at least the
        ``keys`` columns).
        """
        from pyspark.sql import functions as sf

        target = self.name(table)
        if not self.catalog:
            register_table(self.spark, self.storage_root, table)
        present = "_replace_present"
        gone = replaced.select(*keys).distinct().join(
            rows.select(*(sf.col(key).alias(f"_row_{key}") for key in keys)),
            [sf.col(key).eqNullSafe(sf.col(f"_row_{key}")) for key in keys],
            "left_anti",
        )
        source = rows.withColumn(present, sf.lit(True)).unionByName(
            gone.withColumn(present, sf.lit(False)), allowMissingColumns=True
        )
        view = f"_replace_keys_{split_table_name(table)[1]}"
        source.createOrReplaceTempView(view)
        columns = rows.columns
        on = " AND ".join(f"t.`{key}` <=> s.`{key}`" for key in keys)
        changed = " OR ".join(
            f"NOT (t.`{col}` <=> s.`{col}`)" for col in columns if col not in keys
        ) or "FALSE"
        statement = (
            f"MERGE INTO {target} t USING {view} s ON {on} "
            f"WHEN MATCHED AND NOT s.{present} THEN DELETE "
            f"WHEN MATCHED AND ({changed}) THEN UPDATE SET "
            + ", ".join(f"t.`{col}` = s.`{col}`" for col in columns)
            + f" WHEN NOT MATCHED AND s.{present} THEN INSERT ("
            + ", ".join(f"`{col}`" for col in columns) + ") VALUES ("
            + ", ".join(f"s.`{col}`" for col in columns) + ")"
        )
        retry_on_conflict(lambda: self.spark.sql(statement), table)  # a MERGE is idempotent
        self.spark.catalog.dropTempView(view)

    def delete_matching(
        self, table: str, rows: DataFrame, *, on: Sequence[str], where: str = "TRUE"
    ) -> None:
        """Delete the table's rows that equal one of ``rows`` on every ``on`` column (NULL
        matching NULL) and satisfy ``where`` (SQL over the table's columns, alias ``t``).

        Up to ``DELETE_BY_VALUE_ROWS`` distinct ``on`` values (the usual case: a day's late
        parents free a few quarantined rows) are fetched and deleted by one ``DELETE`` whose
        predicate names them; more, or values of a type without a SQL literal here, by a MERGE
        whose only clause deletes. Either way a table row several ``rows`` match is deleted once,
        and deleting twice is a no-op. `make bench`'s small day, day 3, the rows that late parents
        freed from silver's quarantines (7 in fact_orders): fact_orders 1.0-1.2 s (2.1 s by
        MERGE), fact_events 1.5-1.8 s (2.9 s); 11 Spark jobs each instead of 21. Delta's MERGE
        materializes its source first and joins it with the table. The DELETE's predicate grows
        with the rows, and Spark interprets it row by row: on a 5,000-row table it was as fast as
        the MERGE for 10 rows, 0.3 s slower for 50, and took 18.5 s for 1,000. Up to
        ``DELETE_BROADCAST_ROWS`` values are sent whole to every task of the MERGE, which then
        finds the rows without shuffling the table's (`make bench` at scale 10, fact_events' day
        2 freeing 5,147 rows from its quarantine; alternated, warm: 5.9-7.1 s shuffled, 5.0-5.1
        s broadcast).
        """
        from pyspark.sql import functions as sf

        target = self.name(table)
        if not self.catalog:
            register_table(self.spark, self.storage_root, table)
        matched = rows.select(*on).distinct()
        values = matched.limit(DELETE_BY_VALUE_ROWS + 1).collect()
        if not values:
            return
        few = len(values) <= DELETE_BY_VALUE_ROWS
        predicate = _equal_to_one_of(on, [tuple(row) for row in values], alias="t") if few else None
        if predicate is not None:
            statement = f"DELETE FROM {target} t WHERE ({where}) AND ({predicate})"
            retry_on_conflict(lambda: self.spark.sql(statement), table)
            return
        view = f"_delete_matching_{split_table_name(table)[1]}"
        broadcast = matched.limit(DELETE_BROADCAST_ROWS + 1).count() <= DELETE_BROADCAST_ROWS
        (sf.broadcast(matched) if broadcast else matched).createOrReplaceTempView(view)
        same = " AND ".join(f"t.`{column}` <=> s.`{column}`" for column in on)
        statement = (
            f"MERGE INTO {target} t USING {view} s ON {same} AND ({where}) "
            "WHEN MATCHED THEN DELETE"
        )
        retry_on_conflict(lambda: self.spark.sql(statement), table)
        self.spark.catalog.dropTempView(view)


DELETE_BY_VALUE_ROWS = 20
DELETE_BROADCAST_ROWS = 500_000  # values of a few columns each (a key, a file, a date)


def sql_literal(value: object) -> str | None:
    """``value`` (as a Spark row holds it) as a Spark SQL literal, or None for a type without one
    here. Strings are escaped for Spark's default parser (backslash escapes). A timestamp has
    none: a collected one is the Python process's wall time, a literal the session's."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"{value}L" if -(2**63) <= value < 2**63 else None
    if isinstance(value, Decimal):  # fixed-point: Spark collects a zero of scale 8 as 0E-8
        return f"{value:f}BD" if value.is_finite() else None
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return f"DATE'{value.isoformat()}'"
    return None


def _equal_to_one_of(
    columns: Sequence[str], values: Sequence[tuple[object, ...]], *, alias: str
) -> str | None:
    """SQL: the row equals one of ``values`` on ``columns`` (NULL matching NULL), or None when a
    value has no literal (``sql_literal``)."""
    alternatives = []
    for row in values:
        literals = [sql_literal(value) for value in row]
        if any(literal is None for literal in literals):
            return None
        pairs = zip(columns, literals, strict=True)
        same = " AND ".join(f"{alias}.`{column}` <=> {literal}" for column, literal in pairs)
        alternatives.append(f"({same})")
    return " OR ".join(alternatives)


# Delta's refusals of a commit because another writer committed first (nothing was committed).
_CONFLICTS = (
    "ConcurrentAppend", "ConcurrentDelete", "ConcurrentTransaction", "ConcurrentWrite",
    "MetadataChanged", "ProtocolChanged", "DELTA_CONCURRENT", "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
)
CONFLICT_ATTEMPTS = 4
CONFLICT_WAIT_SECONDS = 0.5


def is_write_conflict(error: BaseException) -> bool:
    """Whether Delta refused a commit only because another writer committed first."""
    text = f"{type(error).__name__} {error}"
    return any(marker in text for marker in _CONFLICTS)


def retry_on_conflict(
    action: Callable[[], T], table: str, *, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run ``action`` (one Delta commit that is safe to repeat), again after a write conflict.

    A conflicting commit commits nothing, so a write that replaces a table or a partition, a
    MERGE, an append or an ``ALTER TABLE`` may simply run again on the new version. After
    ``CONFLICT_ATTEMPTS`` conflicts the last one is raised.
    """
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return action()
        except Exception as error:
            if attempt == CONFLICT_ATTEMPTS or not is_write_conflict(error):
                raise
            headline = next(iter(str(error).strip().splitlines()), "")
            log.warning("%s: Delta write conflict (attempt %d of %d), trying again: %s",
                        table, attempt, CONFLICT_ATTEMPTS, headline[:300])
            sleep(CONFLICT_WAIT_SECONDS * attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


def _newer(sequence: Sequence[str]) -> str:
    """SQL: the update's sequence is later than the current row's (a NULL current is older)."""
    clauses = []
    for position, column in enumerate(sequence):
        equal_before = [f"t.`{c}` <=> s.`{c}`" for c in sequence[:position]]
        s_col, t_col = f"s.`{column}`", f"t.`{column}`"
        later = f"({s_col} > {t_col} OR ({t_col} IS NULL AND {s_col} IS NOT NULL))"
        clauses.append("(" + " AND ".join([*equal_before, later]) + ")")
    return "(" + " OR ".join(clauses) + ")"


def _same(sequence: Sequence[str]) -> str:
    """SQL: the update's sequence equals the current row's."""
    return "(" + " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in sequence) + ")"
