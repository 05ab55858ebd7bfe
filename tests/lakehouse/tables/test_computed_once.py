"""computed_once: a frame computed once for the actions of a block.

Locally it is a checkpoint, computed as the block starts; on a cluster it is persisted and
released when the block ends (``is_local_master`` decides; the cluster case is forced here).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf

from medallion.lakehouse import spark as spark_module
from medallion.lakehouse.spark import computed_once, is_local_master


@pytest.fixture
def on_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """computed_once as on a cluster: persisted, not checkpointed."""
    monkeypatch.setattr(spark_module, "is_local_master", lambda _spark: False)


def test_the_suite_session_is_local(spark: SparkSession) -> None:
    assert is_local_master(spark)


def test_locally_the_block_keeps_the_rows_of_its_start_while_their_table_changes(
    spark: SparkSession, tmp_path: Path
) -> None:
    table = str(tmp_path / "numbers")
    spark.range(5).write.format("delta").save(table)
    doubled = spark.read.format("delta").load(table).withColumn("double", sf.col("id") * 2)

    with computed_once(doubled) as kept:
        # the step's own write to a table the rows came from (a quarantine, a MERGE)
        spark.range(100, 103).write.format("delta").mode("overwrite").save(table)
        assert sorted(tuple(row) for row in kept.collect()) == [(i, 2 * i) for i in range(5)]
        assert kept.where("double > 4").count() == 2

    table_now = spark.read.format("delta").load(table)
    assert sorted(row["id"] for row in table_now.collect()) == [100, 101, 102]


@pytest.mark.usefixtures("on_a_cluster")
def test_on_a_cluster_the_block_sees_the_same_rows_persisted_then_released(
    spark: SparkSession,
) -> None:
    frame = spark.range(10).withColumn("double", sf.col("id") * 2)

    with computed_once(frame) as kept:
        assert kept.storageLevel == StorageLevel.MEMORY_AND_DISK
        assert sorted(tuple(row) for row in kept.collect()) == [(i, 2 * i) for i in range(10)]
        assert kept.where("double > 10").count() == 4

    assert frame.storageLevel == StorageLevel.NONE


@pytest.mark.usefixtures("on_a_cluster")
def test_on_a_cluster_the_frame_is_released_when_the_block_raises(spark: SparkSession) -> None:
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
