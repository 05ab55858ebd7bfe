"""mark_duplicates: the kept row, exact copies and older versions; mark_unchanged: rows the table
already holds."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.transforms.silver.dedupe import kept_rows, mark_duplicates, mark_unchanged

SCHEMA = "id STRING, version TIMESTAMP, value STRING, _source_file STRING"
MARKED = f"{SCHEMA}, _drop_rule STRING"
V1, V2 = datetime(2026, 11, 2, 8, 0), datetime(2026, 11, 2, 9, 0)


def _mark(frame: DataFrame) -> DataFrame:
    return mark_duplicates(frame, ["id"], [sf.col("version").desc(), sf.col("_source_file")])


def test_first_row_by_order_is_kept_and_its_exact_copy_is_a_duplicate_record(
    spark: SparkSession,
) -> None:
    rows = [("a", V1, "x", "f1"), ("a", V1, "x", "f2")]

    marked = _mark(spark.createDataFrame(rows, SCHEMA))

    expected = [("a", V1, "x", "f1", None), ("a", V1, "x", "f2", "duplicate_record")]
    assertDataFrameEqual(marked, spark.createDataFrame(expected, MARKED), checkRowOrder=False)


def test_older_version_is_superseded(spark: SparkSession) -> None:
    rows = [("a", V1, "x", "f1"), ("a", V2, "y", "f1"), ("b", V1, "z", "f1")]

    marked = _mark(spark.createDataFrame(rows, SCHEMA))

    expected = [
        ("a", V1, "x", "f1", "superseded_by_newer_version"),
        ("a", V2, "y", "f1", None),
        ("b", V1, "z", "f1", None),
    ]
    assertDataFrameEqual(marked, spark.createDataFrame(expected, MARKED), checkRowOrder=False)


def test_copy_of_an_older_version_is_a_duplicate_record_not_a_version(
    spark: SparkSession,
) -> None:
    # One dirt kind, one rule: the copy counts as duplicate_record, its original as superseded.
    rows = [("a", V1, "x", "f1"), ("a", V1, "x", "f2"), ("a", V2, "y", "f1")]

    marked = _mark(spark.createDataFrame(rows, SCHEMA))

    expected = [
        ("a", V1, "x", "f1", "superseded_by_newer_version"),
        ("a", V1, "x", "f2", "duplicate_record"),
        ("a", V2, "y", "f1", None),
    ]
    assertDataFrameEqual(marked, spark.createDataFrame(expected, MARKED), checkRowOrder=False)


def test_copies_tied_on_the_whole_order_keep_one_and_mark_the_rest(spark: SparkSession) -> None:
    rows = [("a", V1, "x", "f1")] * 3

    marked = mark_duplicates(
        spark.createDataFrame(rows, SCHEMA).repartition(3), ["id"], [sf.col("version").desc()]
    )

    expected = [("a", V1, "x", "f1", None)] + [("a", V1, "x", "f1", "duplicate_record")] * 2
    assertDataFrameEqual(marked, spark.createDataFrame(expected, MARKED), checkRowOrder=False)


def test_kept_rows_drop_the_marker_column(spark: SparkSession) -> None:
    rows = [("a", V1, "x", "f1"), ("a", V2, "y", "f1")]

    kept = kept_rows(_mark(spark.createDataFrame(rows, SCHEMA)))

    assertDataFrameEqual(kept, spark.createDataFrame([("a", V2, "y", "f1")], SCHEMA))


def test_a_row_equal_to_the_tables_version_of_its_key_is_unchanged(spark: SparkSession) -> None:
    held = "id STRING, version TIMESTAMP, value STRING, status STRING"
    current = spark.createDataFrame(
        [("a", V1, "x", "placed"), ("b", V1, None, "placed"), ("c", V1, "x", "placed"),
         ("d", V1, "x", "placed"), ("e", V1, "x", "placed")],
        held,
    )
    batch = [
        ("a", V1, "x", "placed", "day-2"),  # the same version, landed again
        ("b", V1, None, "placed", "day-2"),  # NULL equals NULL
        ("c", V1, "x", None, "day-2"),  # a NULL status keeps the current one: no change
        ("d", V1, "y", "placed", "day-2"),  # another value
        ("e", V2, "x", "placed", "day-2"),  # a newer version
        ("f", V1, "x", "placed", "day-2"),  # a key the table lacks
        (None, V1, "x", "placed", "day-2"),  # no key: never held
    ]

    marked = mark_unchanged(spark.createDataFrame(batch, f"{held}, _source_file STRING"),
                            current, ["id"], ["version", "value", "status"], ["status"])

    expected = [(*row, "unchanged" if row[0] in ("a", "b", "c") else None) for row in batch]
    assertDataFrameEqual(
        marked,
        spark.createDataFrame(expected, f"{held}, _source_file STRING, _drop_rule STRING"),
        checkRowOrder=False,
    )
