"""computed_once: a frame kept for the actions of a block, released after it."""

from __future__ import annotations

import pytest
from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf

from medallion.lakehouse.spark import computed_once


def test_the_block_sees_the_same_rows_kept_in_memory_and_disk_then_released(
    spark: SparkSession,
) -> None:
    frame = spark.range(10).withColumn("double", sf.col("id") * 2)

    with computed_once(frame) as kept:
        assert kept.storageLevel == StorageLevel.MEMORY_AND_DISK
        assert sorted(tuple(row) for row in kept.collect()) == [(i, 2 * i) for i in range(10)]
        assert kept.where("double > 10").count() == 4

    assert frame.storageLevel == StorageLevel.NONE


def test_the_frame_is_released_when_the_block_raises(spark: SparkSession) -> None:
    frame = spark.range(3)

    def failing_step() -> None:
        with computed_once(frame) as kept:
            kept.count()
            raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step failed"):
        failing_step()

    assert frame.storageLevel == StorageLevel.NONE


def test_keep_false_hands_back_the_frame_unpersisted(spark: SparkSession) -> None:
    frame = spark.range(5)

    with computed_once(frame, keep=False) as kept:
        assert kept is frame
        assert kept.storageLevel == StorageLevel.NONE
        assert kept.count() == 5
