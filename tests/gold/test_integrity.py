"""Table-level gold checks: duplicate keys and missing references."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.transforms.gold import duplicate_keys, missing_references


def test_duplicate_keys_lists_each_repeated_key_with_its_count(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [("a", 1), ("a", 2), ("b", 1), (None, 1), (None, 2)], "customer_id STRING, n INT"
    )

    duplicates = duplicate_keys(frame, ["customer_id"])

    expected = spark.createDataFrame([("a", 2), (None, 2)], "customer_id STRING, row_count BIGINT")
    assertDataFrameEqual(duplicates, expected, checkRowOrder=False)


def test_missing_references_returns_orphans_and_null_keys(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("a", 1), ("x", 2), (None, 3)], "customer_id STRING, n INT")
    reference = spark.createDataFrame([("a",), ("b",)], "id STRING")

    missing = missing_references(frame, "customer_id", reference, "id")

    expected = spark.createDataFrame([("x", 2), (None, 3)], "customer_id STRING, n INT")
    assertDataFrameEqual(missing, expected, checkRowOrder=False)
