"""The SQL of the Redshift sink, for Redshift and for PostgreSQL 15 standing in for it.

Every statement the sink runs is built here. What differs between the two databases is held by
``Dialect`` (one instance each, ``POSTGRES`` and ``REDSHIFT``); everything else is SQL both
accept. Identifiers are checked (lowercase snake_case, since Redshift folds case) and quoted, so
reserved words such as ``date`` or ``rows`` are valid column names; values are bound parameters
(``%s``), except in Redshift's ``COPY``, which takes none, where literals are escaped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.serving import PUBLISH_LOG, GoldColumn

STAGING = "_medallion_staging"
"""The temporary table a publish stages its snapshot in (one per connection, dropped at commit)."""

LOG_COLUMNS: tuple[str, ...] = ("target", "gold_table", "gold_version", "rows", "published_at")

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_PLAIN_LITERAL = re.compile(r"[^'\\\s]+")
_IAM_ROLE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")
_SHARED_TYPES = {
    "bigint": "BIGINT",
    "timestamp": "TIMESTAMPTZ",  # gold timestamps are UTC instants
    "date": "DATE",
    "double": "DOUBLE PRECISION",
    "boolean": "BOOLEAN",
}


@dataclass(frozen=True)
class Dialect:
    """What differs between PostgreSQL and Redshift in the sink's SQL, and nothing else."""

    name: str
    string_type: str  # Redshift's TEXT is VARCHAR(256) and would truncate: it gets VARCHAR(MAX)
    max_decimal_precision: int
    has_is_distinct_from: bool  # Redshift has no IS DISTINCT FROM
    # How a publish locks its target against a concurrent one; None where serializable
    # isolation already fails one of two conflicting writers (Redshift).
    lock_target: str | None

    def column_type(self, column: GoldColumn) -> str:
        """The SQL type of a gold column's logical type; ``ConfigError`` when it has none."""
        logical = column.type.strip().lower()
        if logical == "string":
            return self.string_type
        if logical in _SHARED_TYPES:
            return _SHARED_TYPES[logical]
        decimal = _DECIMAL.fullmatch(logical)
        if decimal:
            precision, scale = int(decimal[1]), int(decimal[2])
            if 1 <= precision <= self.max_decimal_precision and scale <= precision:
                return f"DECIMAL({precision}, {scale})"
        raise ConfigError(
            f"gold column {column.name!r}: type {column.type!r} cannot be served by {self.name}; "
            f"expected string, bigint, decimal(p,s) with 1 <= p <= {self.max_decimal_precision} "
            "and s <= p, timestamp, date, double or boolean"
        )

    def differs(self, left: str, right: str) -> str:
        """A predicate true when ``left`` and ``right`` differ, a NULL differing from a value."""
        if self.has_is_distinct_from:
            return f"{left} IS DISTINCT FROM {right}"
        return (
            f"({left} <> {right} OR ({left} IS NULL AND {right} IS NOT NULL) "
            f"OR ({left} IS NOT NULL AND {right} IS NULL))"
        )


POSTGRES = Dialect(
    name="postgresql",
    string_type="TEXT",
    max_decimal_precision=1000,
    has_is_distinct_from=True,
    # Blocks other writers (a concurrent publish), not readers.
    lock_target="LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE",
)
REDSHIFT = Dialect(
    name="redshift",
    string_type="VARCHAR(65535)",
    max_decimal_precision=38,
    has_is_distinct_from=False,
    lock_target=None,
)


@dataclass(frozen=True)
class TableName:
    """A warehouse table as ``schema.table``, both checked identifiers."""

    schema: str
    table: str

    @classmethod
    def parse(cls, target: str) -> TableName:
        """``"redshift_analytics.gold_customer_360"`` -> its parts; ``ConfigError`` otherwise."""
        parts = target.split(".")
        if len(parts) != 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
            raise ConfigError(
                f"warehouse target {target!r}: expected schema.table in lowercase snake_case, "
                "e.g. 'redshift_analytics.gold_customer_360'"
            )
        return cls(parts[0], parts[1])

    @property
    def sql(self) -> str:
        """The quoted, schema-qualified name."""
        return f"{quote(self.schema)}.{quote(self.table)}"

    @property
    def publish_log(self) -> TableName:
        """The publish log of this table's schema."""
        return TableName(self.schema, PUBLISH_LOG)

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


def quote(name: str) -> str:
    """A checked identifier, double-quoted; ``ConfigError`` for anything else."""
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigError(
            f"identifier {name!r}: expected lowercase snake_case ([a-z_][a-z0-9_]*), "
            "which Redshift and PostgreSQL both keep as written"
        )
    return f'"{name}"'


def check_iam_role(iam_role: str) -> str:
    """``iam_role`` when it is an IAM role ARN; ``ConfigError`` otherwise."""
    if not _IAM_ROLE.fullmatch(iam_role):
        raise ConfigError(
            f"Redshift IAM role {iam_role!r}: expected an ARN like "
            "'arn:aws:iam::123456789012:role/redshift-copy'"
        )
    return iam_role


def _names(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{quote(name)}" for name in names)


def _keys_match(keys: Sequence[str], left: str, right: str) -> str:
    return " AND ".join(f"{left}.{quote(key)} = {right}.{quote(key)}" for key in keys)


class Statements:
    """Every statement of a publish, in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def create_schema(self, target: TableName) -> str:
        """The target's schema, when missing."""
        return f"CREATE SCHEMA IF NOT EXISTS {quote(target.schema)}"

    def create_table(
        self, target: TableName, columns: Sequence[GoldColumn], keys: Sequence[str]
    ) -> str:
        """The target with gold's columns, keys NOT NULL and the primary key, when missing.

        Redshift does not enforce the primary key (the sink checks the staged keys instead).
        """
        definitions = [
            f"{quote(column.name)} {self.dialect.column_type(column)}"
            + (" NOT NULL" if column.name in keys else "")
            for column in columns
        ]
        return (
            f"CREATE TABLE IF NOT EXISTS {target.sql} "
            f"({', '.join(definitions)}, PRIMARY KEY ({_names(keys)}))"
        )

    def create_publish_log(self, target: TableName) -> str:
        """The schema's publish log (one row per publish), when missing."""
        text = self.dialect.string_type
        return (
            f"CREATE TABLE IF NOT EXISTS {target.publish_log.sql} ("
            f'"target" {text} NOT NULL, "gold_table" {text} NOT NULL, '
            '"gold_version" BIGINT NOT NULL, "rows" BIGINT NOT NULL, '
            '"published_at" TIMESTAMPTZ NOT NULL)'
        )

    def create_staging(self, columns: Sequence[GoldColumn]) -> str:
        """The temporary staging table, with gold's columns and types and no constraints."""
        definitions = ", ".join(
            f"{quote(column.name)} {self.dialect.column_type(column)}" for column in columns
        )
        return f"CREATE TEMPORARY TABLE {STAGING} ({definitions})"

    def drop_staging(self) -> str:
        """Drop the staging table (it would vanish with the connection anyway)."""
        return f"DROP TABLE IF EXISTS {STAGING}"

    def copy_from_stdin(self, columns: Sequence[str]) -> str:
        """PostgreSQL only: load the staging table from CSV the client streams (an unquoted
        empty field is NULL, a quoted one an empty string)."""
        return f"COPY {STAGING} ({_names(columns)}) FROM STDIN (FORMAT csv)"

    def copy_from_files(self, uri: str, iam_role: str) -> str:
        """Redshift only: load the staging table from the Parquet files under ``uri``, columns
        by position (the files have gold's columns in gold's order, like the staging table)."""
        return (
            f"COPY {STAGING} FROM {_literal(uri)} IAM_ROLE {_literal(check_iam_role(iam_role))} "
            "FORMAT AS PARQUET"
        )

    def count_staged(self) -> str:
        """Rows in the staging table."""
        return f"SELECT count(*) FROM {STAGING}"

    def count_null_keys(self, keys: Sequence[str]) -> str:
        """Staged rows with a NULL in any key column."""
        nulls = " OR ".join(f"{quote(key)} IS NULL" for key in keys)
        return f"SELECT count(*) FROM {STAGING} WHERE {nulls}"

    def count_duplicated_keys(self, keys: Sequence[str]) -> str:
        """Keys staged more than once."""
        return (
            f"SELECT count(*) FROM (SELECT {_names(keys)} FROM {STAGING} "
            f"GROUP BY {_names(keys)} HAVING count(*) > 1) AS duplicated"
        )

    def table_exists(self) -> str:
        """1 when table (schema, name) exists, else 0; parameters: schema, name."""
        return (
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = %s"
        )

    def existing_columns(self) -> str:
        """The column names of table (schema, name); parameters: schema, name."""
        return (
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s"
        )

    def lock(self, target: TableName) -> str | None:
        """Lock the target until the publish commits; None when the dialect needs no lock."""
        if self.dialect.lock_target is None:
            return None
        return self.dialect.lock_target.format(table=target.sql)

    def held_version(self, target: TableName) -> str:
        """The gold version last published to the target; parameters: target, gold table."""
        return (
            f'SELECT "gold_version" FROM {target.publish_log.sql} '
            'WHERE "target" = %s AND "gold_table" = %s '
            'ORDER BY "published_at" DESC, "gold_version" DESC LIMIT 1'
        )

    def add_column(self, target: TableName, column: GoldColumn) -> str:
        """Add one column gold gained (Redshift adds one column per statement)."""
        return (
            f"ALTER TABLE {target.sql} ADD COLUMN {quote(column.name)} "
            f"{self.dialect.column_type(column)}"
        )

    def delete_absent(self, target: TableName, keys: Sequence[str]) -> str:
        """Delete the target rows whose key gold no longer has."""
        return (
            f"DELETE FROM {target.sql} WHERE NOT EXISTS (SELECT 1 FROM {STAGING} AS staged "
            f"WHERE {_keys_match(keys, 'staged', target.sql)})"
        )

    def update_changed(
        self, target: TableName, keys: Sequence[str], columns: Sequence[str]
    ) -> str | None:
        """Update matched keys, only the rows where a gold column differs; None without any
        non-key column (nothing can differ)."""
        values = [name for name in columns if name not in keys]
        if not values:
            return None
        assignments = ", ".join(f"{quote(name)} = staged.{quote(name)}" for name in values)
        changed = " OR ".join(
            self.dialect.differs(f"held.{quote(name)}", f"staged.{quote(name)}") for name in values
        )
        return (
            f"UPDATE {target.sql} AS held SET {assignments} FROM {STAGING} AS staged "
            f"WHERE {_keys_match(keys, 'held', 'staged')} AND ({changed})"
        )

    def insert_new(self, target: TableName, keys: Sequence[str], columns: Sequence[str]) -> str:
        """Insert the staged rows whose key the target does not hold."""
        return (
            f"INSERT INTO {target.sql} ({_names(columns)}) "
            f"SELECT {_names(columns, 'staged.')} FROM {STAGING} AS staged "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target.sql} AS held "
            f"WHERE {_keys_match(keys, 'held', 'staged')})"
        )

    def record_publish(self, target: TableName) -> str:
        """One publish-log row; parameters in ``LOG_COLUMNS`` order."""
        placeholders = ", ".join(["%s"] * len(LOG_COLUMNS))
        return (
            f"INSERT INTO {target.publish_log.sql} ({_names(LOG_COLUMNS)}) VALUES ({placeholders})"
        )

    def figures(self, target: TableName, key: str, sum_columns: Sequence[str]) -> str:
        """Rows, distinct keys and the sum of each column, in one scan."""
        sums = "".join(f", sum({quote(name)})" for name in sum_columns)
        return f"SELECT count(*), count(DISTINCT {quote(key)}){sums} FROM {target.sql}"


def _literal(value: str) -> str:
    """A SQL string literal, for statements that take no parameters; ``ConfigError`` for a value
    with a quote, backslash or space (Redshift may read backslashes as escapes)."""
    if not _PLAIN_LITERAL.fullmatch(value):
        raise ConfigError(
            f"{value!r}: expected a value without quotes, backslashes or spaces, to be written "
            "into a COPY statement"
        )
    return f"'{value}'"
