"""The Snowflake SQL of a publish: names, types and statements, built as text (no I/O).

Identifiers are validated (letters, digits, underscores), upper-cased as Snowflake stores unquoted
names, and quoted, so a reserved word such as ``ROWS`` works as a column name too. Statements take
names already quoted; only the log values are bound as parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.serving import PUBLISH_LOG, GoldColumn

LOAD_STAGE = "_MEDALLION_LOAD"  # a temporary stage per schema; each publish uses its own path
LOG_COLUMNS = ("TARGET", "GOLD_TABLE", "GOLD_VERSION", "ROWS", "PUBLISHED_AT")
_LOG_TYPES = ("VARCHAR", "VARCHAR", "NUMBER(38,0)", "NUMBER(38,0)", "TIMESTAMP_TZ")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")
# Timestamps are TIMESTAMP_TZ: gold holds UTC instants, and a TZ value stays the same instant for
# every reader whatever its session time zone (an NTZ one would be read as local wall time).
_SIMPLE_TYPES: dict[str, tuple[str, pa.DataType]] = {
    "string": ("VARCHAR", pa.string()),
    "bigint": ("NUMBER(38,0)", pa.int64()),
    "timestamp": ("TIMESTAMP_TZ", pa.timestamp("us", tz="UTC")),
    "date": ("DATE", pa.date32()),
    "double": ("FLOAT", pa.float64()),
    "boolean": ("BOOLEAN", pa.bool_()),
}


def identifier(name: str, what: str) -> str:
    """``name`` upper-cased; ConfigError naming ``what`` unless it is a plain identifier."""
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigError(f"{what} {name!r}: expected letters, digits and underscores only")
    return name.upper()


def quoted(name: str) -> str:
    """An upper-case identifier in double quotes."""
    return f'"{name}"'


@dataclass(frozen=True)
class Target:
    """A ``SCHEMA.TABLE`` target in the connection's database, validated and upper-cased."""

    schema: str
    table: str

    @classmethod
    def parse(cls, target: str) -> Target:
        """``analytics.fact_customer_360`` → ``Target("ANALYTICS", "FACT_CUSTOMER_360")``."""
        parts = target.split(".")
        if len(parts) != 2:
            raise ConfigError(f"snowflake target {target!r}: expected SCHEMA.TABLE")
        return cls(
            identifier(parts[0], "snowflake schema"), identifier(parts[1], "snowflake table")
        )

    @property
    def name(self) -> str:
        """``SCHEMA.TABLE``, as the publish log and messages name it."""
        return f"{self.schema}.{self.table}"

    @property
    def sql(self) -> str:
        """The quoted table name."""
        return f"{quoted(self.schema)}.{quoted(self.table)}"

    @property
    def log(self) -> str:
        """The quoted name of the schema's publish log."""
        return f"{quoted(self.schema)}.{quoted(PUBLISH_LOG.upper())}"

    @property
    def stage(self) -> str:
        """The schema's load stage, unquoted as PUT and COPY locations take it."""
        return f"{self.schema}.{LOAD_STAGE}"

    def sibling(self, table: str) -> str:
        """The quoted name of another table in the same schema."""
        return f"{quoted(self.schema)}.{quoted(table)}"


def snowflake_type(column: GoldColumn) -> str:
    """The Snowflake type of a gold column's logical type; ConfigError naming the column."""
    if match := _DECIMAL.fullmatch(column.type):
        precision, scale = int(match[1]), int(match[2])
        if not 1 <= precision <= 38 or scale > precision:
            raise ConfigError(
                f"gold column {column.name!r} is {column.type}: expected precision 1-38 and "
                "a scale of at most the precision"
            )
        return f"NUMBER({precision},{scale})"
    if column.type in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[column.type][0]
    raise ConfigError(
        f"gold column {column.name!r} has type {column.type!r}: expected one of "
        f"{sorted(_SIMPLE_TYPES)} or decimal(p,s)"
    )


def arrow_type(column: GoldColumn) -> pa.DataType:
    """The Arrow type a column is staged as (timestamps as UTC microseconds)."""
    if match := _DECIMAL.fullmatch(column.type):
        return pa.decimal128(int(match[1]), int(match[2]))
    return _SIMPLE_TYPES[column.type][1]


def column_list(names: Sequence[str], types: Sequence[str], *, not_null: bool = False) -> str:
    """A CREATE TABLE column list: ``"NAME" TYPE, ...``."""
    suffix = " NOT NULL" if not_null else ""
    return ", ".join(f"{quoted(n)} {t}{suffix}" for n, t in zip(names, types, strict=True))


def log_table_ddl(target: Target) -> str:
    """CREATE the schema's publish log when missing."""
    columns = column_list(LOG_COLUMNS, _LOG_TYPES, not_null=True)
    return f"CREATE TABLE IF NOT EXISTS {target.log} ({columns})"


def log_insert(target: Target) -> str:
    """INSERT one publish-log row; binds target, gold table, version and rows."""
    names = ", ".join(quoted(name) for name in LOG_COLUMNS)
    return f"INSERT INTO {target.log} ({names}) SELECT %s, %s, %s, %s, CURRENT_TIMESTAMP()"


def held_version_query(target: Target) -> str:
    """The latest logged version of a (target, gold table); binds both."""
    return (
        f'SELECT "GOLD_VERSION" FROM {target.log} WHERE "TARGET" = %s AND "GOLD_TABLE" = %s '
        'ORDER BY "PUBLISHED_AT" DESC, "GOLD_VERSION" DESC LIMIT 1'
    )


def _matches(keys: Sequence[str]) -> str:
    return " AND ".join(f"t.{key} = s.{key}" for key in keys)


def _differs(values: Sequence[str]) -> str:
    return " OR ".join(f"t.{name} IS DISTINCT FROM s.{name}" for name in values)


def _assignments(values: Sequence[str]) -> str:
    return ", ".join(f"{name} = s.{name}" for name in values)


def merge_statement(target: str, staging: str, keys: Sequence[str], columns: Sequence[str]) -> str:
    """MERGE updating matched keys whose values differ and inserting new keys.

    ``columns`` include the keys. Snowflake answers with one row of counts
    (``number of rows inserted``, ``number of rows updated``).
    """
    values = [name for name in columns if name not in keys]
    update = (
        f"WHEN MATCHED AND ({_differs(values)}) THEN UPDATE SET {_assignments(values)} "
        if values
        else ""
    )
    return (
        f"MERGE INTO {target} AS t USING {staging} AS s ON {_matches(keys)} {update}"
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) "
        f"VALUES ({', '.join(f's.{name}' for name in columns)})"
    )


def delete_statement(target: str, staging: str, keys: Sequence[str]) -> str:
    """DELETE the target rows whose key the staged snapshot no longer has."""
    return (
        f"DELETE FROM {target} AS t "
        f"WHERE NOT EXISTS (SELECT 1 FROM {staging} AS s WHERE {_matches(keys)})"
    )


def key_check_query(staging: str, keys: Sequence[str]) -> str:
    """One row: staged rows with a null key, and keys staged on more than one row."""
    listed = ", ".join(keys)
    any_null = " OR ".join(f"{key} IS NULL" for key in keys)
    return (
        f"SELECT (SELECT COUNT(*) FROM {staging} WHERE {any_null}), "
        f"(SELECT COUNT(*) FROM (SELECT {listed} FROM {staging} GROUP BY {listed} "
        "HAVING COUNT(*) > 1) AS duplicated)"
    )


def copy_statement(staging: str, location: str) -> str:
    """COPY the Parquet files at ``location`` into ``staging`` by column name, then purge them."""
    return (
        f"COPY INTO {staging} FROM {location} "
        "FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE) "
        "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE"
    )


def sum_expression(column: str, data_type: str, scale: int | None) -> str | None:
    """An exact SUM of a NUMBER or FLOAT column; None for any other type.

    The cast to the column's own type is a no-op on Snowflake; fakesnow sums an uncast
    argument as DOUBLE, which would round large decimals.
    """
    if data_type == "NUMBER":
        return f"SUM(CAST({quoted(column)} AS NUMBER(38,{scale or 0})))"
    if data_type == "FLOAT":
        return f"SUM(CAST({quoted(column)} AS FLOAT))"
    return None
