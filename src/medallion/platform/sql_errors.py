"""Spark's errors for a query, as the one line ``medallion sql`` prints (a ``SqlError``).

Read from the error's condition and message parameters, which classic (py4j) and Spark Connect
exceptions both carry; only a parse error's position is read from its message, since Spark puts
it nowhere else that both kinds of session expose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from medallion.lakehouse.errors import SqlError

if TYPE_CHECKING:
    from pyspark.errors import PySparkException
    from pyspark.sql import SparkSession

# pyspark logs every error that has a query context, JVM stack trace included, as it builds the
# exception: the same error again, in JSON, on stderr.
ERROR_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")
_NAME_PART_OR_COMMA = re.compile(r"`((?:[^`]|``)*)`|(,)")
_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARSE_POSITION = re.compile(r"\(line (\d+), pos (\d+)\)")
_SQLSTATE = re.compile(r"\s*SQLSTATE: .*$")


@contextmanager
def quiet_error_logs() -> Iterator[None]:
    """Silence pyspark's JSON log of query errors inside the block; the error is still raised."""
    from pyspark.logger import PySparkLogger

    loggers = [PySparkLogger.getLogger(name) for name in ERROR_LOGGERS]
    were_disabled = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, was_disabled in zip(loggers, were_disabled, strict=True):
            logger.disabled = was_disabled


def sql_error(spark: SparkSession, error: PySparkException) -> SqlError | None:
    """``error`` as one line naming what is wrong and what exists instead; None when Spark gave
    it no condition (not an error in the query: a lost connection, a crash).

    ``spark`` must still be up: the catalog is read to list the tables or schemas that exist.
    """
    from pyspark.errors import ParseException, PySparkException

    condition = error.getCondition()
    if condition is None:
        return None
    parameters = error.getMessageParameters() or {}
    try:
        if condition == "TABLE_OR_VIEW_NOT_FOUND" and "relationName" in parameters:
            return SqlError(_unknown_table(spark, _name_parts(parameters["relationName"])))
        if condition == "SCHEMA_NOT_FOUND" and "schemaName" in parameters:
            schema = _quoted(_name_parts(parameters["schemaName"])[-1])
            return SqlError(f"unknown schema {schema}: {_schemas(spark)}")
    except PySparkException:  # the catalog cannot be read: the error without the listing
        return SqlError(_first_line(error))
    if condition.startswith("UNRESOLVED_COLUMN.") and "objectName" in parameters:
        return SqlError(_unknown_column(parameters["objectName"], parameters.get("proposal", "")))
    if isinstance(error, ParseException):
        return SqlError(_syntax_error(error, condition, parameters))
    return SqlError(_first_line(error))


def _unknown_table(spark: SparkSession, parts: list[str]) -> str:
    """Which tables the schema has, or which schemas exist when it does not."""
    parts = parts[-2:]  # a catalog, if named, is the session's own: Spark checked it
    written = ".".join(_quoted(part) for part in parts)
    schema = _quoted(parts[0] if len(parts) == 2 else spark.catalog.currentDatabase())
    if not spark.catalog.databaseExists(schema):
        return f"unknown table {written}: there is no schema {schema}; {_schemas(spark)}"
    # SHOW TABLES, not catalog.listTables: that fails to decode a Delta table's row (Spark 4.1)
    tables = sorted(
        _quoted(row.tableName)
        for row in spark.sql(f"SHOW TABLES IN {schema}").collect()
        if not row.isTemporary
    )
    if not tables:
        return f"unknown table {written}: {schema} has no tables; {_schemas(spark)}"
    return f"unknown table {written}: {schema} has {', '.join(tables)}"


def _schemas(spark: SparkSession) -> str:
    names = sorted(_quoted(row.namespace) for row in spark.sql("SHOW SCHEMAS").collect())
    return f"the schemas are {', '.join(names)}"


def _unknown_column(name: str, proposal: str) -> str:
    """The column as written and the ones Spark suggests, nearest first."""
    column = ".".join(_quoted(part) for part in _name_parts(name))
    suggested = _names(proposal)
    if not suggested:
        return f"unknown column {column}"
    if len(suggested) == 1:
        return f"unknown column {column}: did you mean {suggested[0]}?"
    return f"unknown column {column}: did you mean one of {', '.join(suggested)}?"


def _syntax_error(error: PySparkException, condition: str, parameters: dict[str, str]) -> str:
    """Where the parser stopped (line, column) and the token it stopped at."""
    position = _PARSE_POSITION.search(str(error))
    where = f" at line {position[1]}, column {int(position[2]) + 1}" if position else ""
    if condition != "PARSE_SYNTAX_ERROR" or "error" not in parameters:
        return f"syntax error{where}: {_first_line(error)}"
    near, hint = parameters["error"], parameters.get("hint", "")
    if near == "end of input":
        return f"syntax error{where}: unexpected end of the query{hint}"
    return f"syntax error{where} near {near}{hint}"


def _first_line(error: PySparkException) -> str:
    """The first line of Spark's message, without its SQLSTATE and plan."""
    lines = str(error).strip().splitlines()
    return _SQLSTATE.sub("", lines[0]) if lines else type(error).__name__


def _name_parts(name: str) -> list[str]:
    """The parts of one name as Spark quotes it: ```gold`.`no``such``` -> gold, no`such."""
    parts = [
        match[1].replace("``", "`")
        for match in _NAME_PART_OR_COMMA.finditer(name)
        if match[2] is None
    ]
    return parts or name.split(".")


def _names(text: str) -> list[str]:
    """Spark's list of quoted names, as written: ```o`.`id`, `name``` -> o.id, name."""
    names: list[str] = []
    parts: list[str] = []
    for match in _NAME_PART_OR_COMMA.finditer(text):
        if match[2] is None:
            parts.append(_quoted(match[1].replace("``", "`")))
        elif parts:
            names.append(".".join(parts))
            parts = []
    if parts:
        names.append(".".join(parts))
    return names


def _quoted(part: str) -> str:
    """A name part as SQL needs it written: bare when it can be, else in backticks."""
    return part if _PLAIN_IDENTIFIER.fullmatch(part) else "`" + part.replace("`", "``") + "`"
