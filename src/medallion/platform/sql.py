"""Ad-hoc SQL against the lakehouse catalog, for ``medallion sql``; with a role, access-checked."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medallion.lakehouse.errors import AccessDenied
from medallion.lakehouse.governance import DEFAULT_SCHEMA, Roles
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import register_tables
from medallion.platform import compute
from medallion.platform.roles import declared_roles
from medallion.platform.sql_errors import quiet_error_logs, sql_error

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from sqlglot import exp

# `<format>.`<path>`` reads files directly (Spark's "SQL on files"): the formats Spark knows.
FILE_FORMATS = frozenset(
    {"delta", "parquet", "orc", "json", "csv", "text", "avro", "binaryfile", "xml"}
)


@dataclass(frozen=True)
class TableRead:
    """One table a query reads: ``schema.name`` (a bare name is in schema default), or a read
    that bypasses the catalog (``table`` None): by path, or through a table function."""

    written: str  # as the query spells it, for messages
    table: str | None


def open_session(
    storage_root: StorageRoot, *, on_local_start: Callable[[], None] | None = None
) -> SparkSession:
    """A session on the lakehouse for a CLI command, its tables registered.

    The warm compute server when one is up for the storage root (sub-second), else
    ``SPARK_REMOTE``, else a local session (~9 s), calling ``on_local_start`` before it starts.
    """
    from pyspark.sql import SparkSession

    from medallion.lakehouse.spark import build_local_session

    server = compute.find_server(storage_root)
    if server is not None:
        spark = SparkSession.builder.remote(server.url).getOrCreate()
        register_tables(spark, storage_root)
    elif os.environ.get("SPARK_REMOTE"):
        spark = SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
    else:
        if on_local_start is not None:
            on_local_start()
        spark = build_local_session(storage_root)
    return spark


def _table_read(table: exp.Table) -> TableRead:
    """What one table reference of a query reads."""
    from sqlglot import exp

    if not isinstance(table.this, exp.Identifier):  # read_files('/p'), IDENTIFIER('x'), range(3)
        return TableRead(table.this.sql(dialect="spark"), None)
    schema, name = table.db, table.name
    if schema.lower() in FILE_FORMATS or "/" in name or ":" in name:
        return TableRead(f"{schema}.`{name}`" if schema else f"`{name}`", None)
    written = ".".join(part for part in (table.catalog, schema, name) if part)
    return TableRead(written, f"{(schema or DEFAULT_SCHEMA).lower()}.{name.lower()}")


def tables_read(statement: exp.Query) -> list[TableRead]:
    """Every table a parsed query reads, in the order written; a CTE's name is not a table."""
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.scope import Scope, traverse_scope

    try:
        cte_references = {
            id(table)
            for scope in traverse_scope(statement)
            for table in scope.tables
            if isinstance(scope.sources.get(table.alias_or_name), Scope)
        }
    except SqlglotError:  # unresolvable scopes: check every name as a table (fail closed)
        cte_references = set()
    return [
        _table_read(table)
        for table in statement.find_all(exp.Table, bfs=False)
        if id(table) not in cte_references
    ]


def check_query(roles: Roles, role: str, query: str) -> None:
    """Raise AccessDenied at the first table ``query`` reads that ``role`` may not read.

    Only queries are allowed (the grants are USE SCHEMA and SELECT), and SQL that does not parse
    is denied, since what it reads cannot be known. An unknown role is a ConfigError.
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    roles.readable(role)
    try:
        statements = [s for s in sqlglot.parse(query, dialect="spark") if s is not None]
    except SqlglotError as error:
        first_line = str(error).splitlines()[0]
        raise AccessDenied(
            f"role {role!r}: the query does not parse ({first_line}), so the tables it reads "
            "cannot be checked"
        ) from error
    for statement in statements:
        if not isinstance(statement, exp.Query):
            kind = statement.sql(dialect="spark").split(" ", 1)[0].upper()
            raise AccessDenied(
                f"role {role!r} may only run queries (SELECT, WITH, UNION, ...): its grants "
                f"are USE SCHEMA and SELECT, and {kind} is not a query"
            )
        for read in tables_read(statement):
            if read.table is None:
                roles.deny_path_read(role, read.written)
            else:
                roles.check_read(role, read.table)


def query_rows(
    spark: SparkSession,
    query: str,
    *,
    limit: int = 1000,
    role: str | None = None,
    roles: Roles | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and up to ``limit`` rows of ``query``, read as ``role`` when one is given.

    An error in the query (unknown table or column, bad syntax, ...) is a one-line SqlError,
    raised from Spark's own.
    """
    from pyspark.errors import PySparkException

    if role is not None:
        check_query(roles or declared_roles(), role, query)
    with quiet_error_logs():
        try:
            frame = spark.sql(query)
            return list(frame.columns), [tuple(row) for row in frame.limit(limit).collect()]
        except PySparkException as error:
            translated = sql_error(spark, error)
            if translated is None:
                raise
            raise translated from error


def run_sql(
    query: str,
    storage_root: StorageRoot,
    *,
    limit: int = 1000,
    role: str | None = None,
    roles: Roles | None = None,
    on_local_start: Callable[[], None] | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """``query_rows`` on a session of its own; a denied query is refused before Spark starts."""
    if role is not None:
        check_query(roles or declared_roles(), role, query)
    spark = open_session(storage_root, on_local_start=on_local_start)
    try:
        return query_rows(spark, query, limit=limit)
    finally:
        spark.stop()
