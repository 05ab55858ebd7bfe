"""register_table: a lakehouse table's name in the session catalog points at its Delta folder."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from pyspark.errors import AnalysisException
from pyspark.logger import PySparkLogger
from pyspark.sql import DataFrame, SparkSession

from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse, register_table, registered_location


def write_ids(lakehouse: Lakehouse, table: str, ids: list[int]) -> None:
    frame = local_frame(lakehouse.spark, [(i,) for i in ids], "id int")
    frame.write.format("delta").save(str(lakehouse.path(table)))


def test_the_name_points_at_the_table_of_the_root_last_registered(
    spark: SparkSession, tmp_path: Path
) -> None:
    first = Lakehouse.open(spark, StorageRoot(tmp_path / "first"))
    second = Lakehouse.open(spark, StorageRoot(tmp_path / "second"))
    write_ids(first, "ops.register_probe", [1, 2])
    write_ids(second, "ops.register_probe", [7])

    register_table(spark, first.storage_root, "ops.register_probe")
    assert registered_location(spark, "ops.register_probe") == first.path("ops.register_probe")
    assert sorted(row.id for row in spark.table("ops.register_probe").collect()) == [1, 2]

    register_table(spark, second.storage_root, "ops.register_probe")
    assert registered_location(spark, "ops.register_probe") == second.path("ops.register_probe")
    assert [row.id for row in spark.table("ops.register_probe").collect()] == [7]


def test_a_name_left_pointing_at_a_deleted_folder_is_registered_again(
    spark: SparkSession, tmp_path: Path
) -> None:
    gone = Lakehouse.open(spark, StorageRoot(tmp_path / "gone"))
    write_ids(gone, "ops.register_dangling", [1])
    register_table(spark, gone.storage_root, "ops.register_dangling")
    shutil.rmtree(tmp_path / "gone")  # a test's or a run's root, removed with the name still set
    here = Lakehouse.open(spark, StorageRoot(tmp_path / "here"))
    write_ids(here, "ops.register_dangling", [7, 8])

    register_table(spark, here.storage_root, "ops.register_dangling")

    assert registered_location(spark, "ops.register_dangling") == here.path(
        "ops.register_dangling")
    assert sorted(row.id for row in spark.table("ops.register_dangling").collect()) == [7, 8]


def test_a_name_registered_by_another_session_is_only_looked_up(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    write_ids(lakehouse, "ops.register_shared", [3])
    register_table(spark, lakehouse.storage_root, "ops.register_shared")
    other = spark.newSession()  # a later task's session: the same catalog, nothing remembered
    statements: list[str] = []
    sql = other.sql

    def recorded(statement: str, *args: Any, **kwargs: Any) -> DataFrame:
        statements.append(statement)
        return sql(statement, *args, **kwargs)

    monkeypatch.setattr(other, "sql", recorded)

    register_table(other, lakehouse.storage_root, "ops.register_shared")

    assert statements == ["SHOW TABLE EXTENDED IN ops LIKE 'register_shared'"]
    assert [row.id for row in other.table("ops.register_shared").collect()] == [3]


def test_an_unknown_name_or_schema_is_registered_nowhere(spark: SparkSession) -> None:
    assert registered_location(spark, "ops.no_such_table") is None
    assert registered_location(spark, "no_such_schema.anything") is None


def test_looking_up_an_unknown_name_runs_no_query_that_fails(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spark's own listeners log each failed query of a classic session (ERROR, with the JVM's
    # stack trace) once a frame has been observed, and pyspark's logging cannot hold that back.
    other = spark.newSession()
    other.sql("CREATE SCHEMA IF NOT EXISTS ops")  # a known schema: only a missing one may fail
    other.range(1).createOrReplaceTempView("never_registered")  # listed too, and not a table
    outcomes: list[tuple[str, str | None]] = []
    sql = other.sql

    def run(statement: str, *args: Any, **kwargs: Any) -> DataFrame:
        try:
            result = sql(statement, *args, **kwargs)
            result.collect()
        except AnalysisException as error:
            outcomes.append((statement, error.getCondition()))
            raise
        outcomes.append((statement, None))
        return result

    monkeypatch.setattr(other, "sql", run)

    assert registered_location(other, "ops.never_registered") is None
    assert outcomes == [("SHOW TABLE EXTENDED IN ops LIKE 'never_registered'", None)]


class Collected(logging.Handler):
    """Keeps the records a logger hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_looking_up_an_unknown_name_logs_no_error_but_other_errors_still_are(
    spark: SparkSession,
) -> None:
    # pyspark logs each SQL error it raises, on a logger of its own that writes to stderr: a
    # notebook shows the record as a failure's stack trace.
    logger = PySparkLogger.getLogger("SQLQueryContextLogger")
    collector = Collected()
    logger.addHandler(collector)
    try:
        assert registered_location(spark, "ops.never_registered") is None
        expected = list(collector.records)
        with pytest.raises(AnalysisException):
            spark.sql("DESCRIBE TABLE EXTENDED ops.never_registered").collect()
    finally:
        logger.removeHandler(collector)

    assert expected == []
    assert [record.context["errorClass"]  # type: ignore[attr-defined]
            for record in collector.records] == ["TABLE_OR_VIEW_NOT_FOUND"]
