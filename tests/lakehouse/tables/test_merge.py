"""Lakehouse.merge: upserts that are idempotent, sequence-aware and CDC-friendly."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse

SCHEMA = "order_id string, status string, updated_at timestamp, _rank int, _ingest_ts timestamp"
T0, T1, T2 = datetime(2026, 1, 1, 9), datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 11)
INGEST_A, INGEST_B = datetime(2026, 1, 2), datetime(2026, 1, 3)


@pytest.fixture
def lakehouse(spark: SparkSession, tmp_path: Path) -> Lakehouse:
    return Lakehouse.open(spark, StorageRoot(tmp_path))


def seed(lakehouse: Lakehouse, table: str) -> None:
    current = lakehouse.spark.createDataFrame(
        [("o1", "shipped", T1, 1, INGEST_A), ("o2", "placed", T1, 0, INGEST_A)], SCHEMA
    )
    lakehouse.write(current, table)


def merge(
    lakehouse: Lakehouse, table: str, rows: list[tuple[object, ...]], **options: object
) -> None:
    updates = lakehouse.spark.createDataFrame(rows, SCHEMA)
    lakehouse.merge(updates, table, keys=["order_id"], **options)  # type: ignore[arg-type]


def test_an_older_version_never_replaces_a_newer_one(lakehouse: Lakehouse) -> None:
    seed(lakehouse, "silver.merge_older")
    merge(
        lakehouse,
        "silver.merge_older",
        [("o1", "placed", T0, 1, INGEST_B), ("o2", "delivered", T2, 0, INGEST_B)],
        sequence_by=["updated_at", "_rank"],
    )
    expected = lakehouse.spark.createDataFrame(
        [("o1", "shipped", T1, 1, INGEST_A), ("o2", "delivered", T2, 0, INGEST_B)], SCHEMA
    )
    assertDataFrameEqual(lakehouse.read("silver.merge_older"), expected)


def test_a_tie_on_the_first_sequence_column_goes_to_the_higher_second(lakehouse: Lakehouse) -> None:
    seed(lakehouse, "silver.merge_tie")
    merge(
        lakehouse,
        "silver.merge_tie",
        [("o1", "placed", T1, 0, INGEST_B), ("o2", "cancelled", T1, 1, INGEST_B)],
        sequence_by=["updated_at", "_rank"],
    )
    expected = lakehouse.spark.createDataFrame(
        [("o1", "shipped", T1, 1, INGEST_A), ("o2", "cancelled", T1, 1, INGEST_B)], SCHEMA
    )
    assertDataFrameEqual(lakehouse.read("silver.merge_tie"), expected)


def test_missing_fields_keep_their_current_value(lakehouse: Lakehouse) -> None:
    seed(lakehouse, "silver.merge_keep")
    merge(
        lakehouse,
        "silver.merge_keep",
        [("o1", None, T2, 0, INGEST_B), ("o3", None, T2, 0, INGEST_B)],
        sequence_by=["updated_at"],
        keep_current_when_null=["status"],
    )
    expected = lakehouse.spark.createDataFrame(
        [
            ("o1", "shipped", T2, 0, INGEST_B),
            ("o2", "placed", T1, 0, INGEST_A),
            ("o3", None, T2, 0, INGEST_B),
        ],
        SCHEMA,
    )
    assertDataFrameEqual(lakehouse.read("silver.merge_keep"), expected)


def test_a_record_landed_again_does_not_rewrite_the_table(lakehouse: Lakehouse) -> None:
    seed(lakehouse, "silver.merge_same")
    version = lakehouse.spark.sql(
        f"DESCRIBE HISTORY delta.`{lakehouse.path('silver.merge_same')}`"
    ).count()
    merge(
        lakehouse,
        "silver.merge_same",
        [("o1", "shipped", T1, 1, INGEST_B)],
        sequence_by=["updated_at", "_rank"],
        compare_columns=["status", "updated_at"],
    )
    history = lakehouse.spark.sql(
        f"DESCRIBE HISTORY delta.`{lakehouse.path('silver.merge_same')}`"
    ).orderBy("version", ascending=False).first()
    assert history is not None
    assert history["version"] == version  # the MERGE committed, changing nothing
    assert history["operationMetrics"]["numTargetRowsUpdated"] == "0"
    assert history["operationMetrics"]["numTargetRowsInserted"] == "0"
    expected = lakehouse.spark.createDataFrame(
        [("o1", "shipped", T1, 1, INGEST_A), ("o2", "placed", T1, 0, INGEST_A)], SCHEMA
    )
    assertDataFrameEqual(lakehouse.read("silver.merge_same"), expected)
