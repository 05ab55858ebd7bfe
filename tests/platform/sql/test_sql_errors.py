"""``medallion sql`` on a wrong query: one line naming what is wrong and what exists, exit 1."""

from __future__ import annotations

from collections.abc import Iterator
from logging.handlers import BufferingHandler
from pathlib import Path

import pytest
from pyspark.logger import PySparkLogger
from pyspark.sql import SparkSession
from typer.testing import CliRunner, Result

from medallion.lakehouse import spark as medallion_spark
from medallion.lakehouse.errors import SqlError
from medallion.platform import cli, compute
from medallion.platform.sql import query_rows
from medallion.platform.sql_errors import ERROR_LOGGERS

NOTE = (
    "note: no warm compute, so Spark starts for this query (~10-20 s); "
    "`medallion compute up --storage-root {root}` keeps one up for sub-second queries\n"
)


@pytest.fixture(scope="module")
def schema(spark: SparkSession) -> Iterator[str]:
    """Schema ``sql_errors`` of the shared session, with two views: no other test adds to it."""
    spark.sql("CREATE SCHEMA sql_errors")
    spark.sql("CREATE VIEW sql_errors.orders_daily AS SELECT 1 AS order_id, 'c1' AS customer_id")
    spark.sql("CREATE VIEW sql_errors.fx_daily_change AS SELECT 'EUR' AS currency")
    yield "sql_errors"
    spark.sql("DROP SCHEMA sql_errors CASCADE")


@pytest.fixture
def local_start(spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """No warm server: the command's "local session" is the shared one, left running."""
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.setattr(compute, "find_server", lambda storage_root: None)
    monkeypatch.setattr(medallion_spark, "build_local_session", lambda storage_root: spark)
    monkeypatch.setattr(spark, "stop", lambda: None)


def sql(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli.app, ["sql", *args, "--storage-root", str(root)])


@pytest.mark.usefixtures("schema", "local_start")
@pytest.mark.parametrize(
    ("query", "error"),
    [
        pytest.param(
            "SELECT * FROM sql_errors.nosuch",
            "unknown table sql_errors.nosuch: sql_errors has fx_daily_change, orders_daily",
            id="unknown-table",
        ),
        pytest.param(
            "SELECT o.order_idd FROM sql_errors.orders_daily o",
            "unknown column o.order_idd: did you mean one of o.order_id, o.customer_id?",
            id="unknown-column",
        ),
        pytest.param(
            "SELECT *\nFROM sql_errors.orders_daily\nWHER order_id = 1",
            "syntax error at line 3, column 6 near 'order_id'",
            id="parse-error",
        ),
    ],
)
def test_an_error_in_the_query_is_one_line_and_exit_1(
    tmp_path: Path, query: str, error: str
) -> None:
    result = sql(tmp_path, query)

    assert (result.exit_code, result.stdout, result.stderr) == (
        1, "", NOTE.format(root=tmp_path) + f"error: {error}\n"
    )
    assert "Traceback" not in result.output
    assert "py4j" not in result.output


@pytest.mark.usefixtures("schema", "local_start")
def test_debug_prints_sparks_full_error_first(tmp_path: Path) -> None:
    result = sql(tmp_path, "SELEC 1", "--debug")

    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "[PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'" in result.stderr
    assert "== SQL ==\nSELEC 1\n^^^" in result.stderr
    assert result.stderr.endswith("\nerror: syntax error at line 1, column 1 near 'SELEC'\n")


@pytest.mark.usefixtures("schema")
def test_unknown_schema_lists_the_schemas(spark: SparkSession) -> None:
    schemas = sorted(row.namespace for row in spark.sql("SHOW SCHEMAS").collect())

    with pytest.raises(SqlError) as unknown:
        query_rows(spark, "SELECT * FROM nosuch.orders_daily")

    assert "sql_errors" in schemas
    assert str(unknown.value) == (
        f"unknown table nosuch.orders_daily: there is no schema nosuch; "
        f"the schemas are {', '.join(schemas)}"
    )


@pytest.mark.usefixtures("schema")
def test_sparks_own_log_of_the_error_is_silenced(spark: SparkSession) -> None:
    """pyspark logs the error, JVM trace and all, to stderr as it builds the exception."""
    handler = BufferingHandler(capacity=100)
    logger = PySparkLogger.getLogger(ERROR_LOGGERS[0])
    logger.addHandler(handler)
    try:
        with pytest.raises(SqlError):
            query_rows(spark, "SELECT nosuch FROM sql_errors.orders_daily")
    finally:
        logger.removeHandler(handler)

    assert (handler.buffer, logger.disabled) == ([], False)
