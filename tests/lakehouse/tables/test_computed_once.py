"""computed_once: a frame computed once for the actions of a block.

Locally it is a checkpoint, computed as the block starts; on a cluster it is persisted and
released when the block ends (``is_local_master`` decides; the cluster case is forced here).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf

from medallion.lakehouse import spark as spark_module
from medallion.lakehouse.spark import computed_once, computed_once_each, is_local_master


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


def test_frames_computed_at_once_each_keep_the_rows_of_their_start(
    spark: SparkSession, tmp_path: Path
) -> None:
    tables = {name: str(tmp_path / name) for name in ("small", "large")}
    spark.range(3).write.format("delta").save(tables["small"])
    spark.range(10, 20).write.format("delta").save(tables["large"])
    frames = {name: spark.read.format("delta").load(path) for name, path in tables.items()}

    with ExitStack() as stack:
        kept = computed_once_each(stack, frames)
        for path in tables.values():  # the step's own writes to the tables they came from
            spark.range(100, 101).write.format("delta").mode("overwrite").save(path)
        assert {name: sorted(row["id"] for row in frame.collect())
                for name, frame in kept.items()} == {
            "small": [0, 1, 2], "large": list(range(10, 20))}


def test_a_frame_that_fails_to_compute_raises_its_error(spark: SparkSession) -> None:
    bad = spark.range(3).select(sf.assert_true(sf.col("id") < 1).alias("ok"))

    with pytest.raises(Exception, match="id < 1"), ExitStack() as stack:
        computed_once_each(stack, {"good": spark.range(4), "bad": bad})


@pytest.mark.usefixtures("on_a_cluster")
def test_on_a_cluster_frames_computed_at_once_are_released_with_the_stack(
    spark: SparkSession,
) -> None:
    frames = {"four": spark.range(4), "two": spark.range(2)}

    with ExitStack() as stack:
        kept = computed_once_each(stack, frames)
        assert {name: frame.storageLevel for name, frame in kept.items()} == {
            "four": StorageLevel.MEMORY_AND_DISK, "two": StorageLevel.MEMORY_AND_DISK}
        assert (kept["four"].count(), kept["two"].count()) == (4, 2)

    assert {name: frame.storageLevel for name, frame in frames.items()} == {
        "four": StorageLevel.NONE, "two": StorageLevel.NONE}
