"""A session inside a job run names its task in Delta commits and Spark job tags."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medallion.lakehouse.runtime import CONTEXT_ENV, TaskContext
from medallion.lakehouse.spark import (
    COMMIT_METADATA_CONF,
    EVENT_LOG_DIR_ENV,
    GOLD_INCREMENTAL_MIN_BYTES_CONF,
    GOLD_INCREMENTAL_MIN_BYTES_ENV,
    label_for_task,
    local_spark_conf,
    with_job_tags,
)
from medallion.lakehouse.storage import StorageRoot

CONTEXT = TaskContext("build_analytics", "20261102T060000Z-abc123", "silver_fact_orders",
                      Path("/runs/build_analytics/20261102T060000Z-abc123"))


@pytest.fixture
def labelled(spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> Iterator[SparkSession]:
    """The shared session labelled for CONTEXT's task, unlabelled again afterwards."""
    monkeypatch.setenv(CONTEXT_ENV, CONTEXT.to_json())
    try:
        yield label_for_task(spark)
    finally:
        spark.conf.unset(COMMIT_METADATA_CONF)
        spark.removeTag(CONTEXT.label)


def test_a_commit_names_the_job_run_and_task(labelled: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "table")
    labelled.range(3).write.format("delta").save(path)

    history = labelled.sql(f"DESCRIBE HISTORY delta.`{path}`").select("userMetadata").collect()

    assert [row["userMetadata"] for row in history] == [
        "build_analytics/20261102T060000Z-abc123/silver_fact_orders"
    ]
    assert labelled.getTags() == {CONTEXT.label}


def test_outside_a_job_run_the_session_is_left_as_it_is(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONTEXT_ENV, raising=False)

    label_for_task(spark)

    assert spark.conf.get(COMMIT_METADATA_CONF, None) is None
    assert spark.getTags() == set()


def test_the_event_log_is_written_only_when_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(EVENT_LOG_DIR_ENV, raising=False)
    conf = local_spark_conf(StorageRoot(tmp_path))
    assert not any(key.startswith("spark.eventLog") for key in conf)

    monkeypatch.setenv(EVENT_LOG_DIR_ENV, str(tmp_path / "events"))
    conf = local_spark_conf(StorageRoot(tmp_path))

    assert conf["spark.eventLog.enabled"] == "true"
    assert conf["spark.eventLog.dir"] == (tmp_path / "events").resolve().as_uri()
    assert (conf["spark.eventLog.compress"], conf["spark.eventLog.rolling.enabled"]) == (
        "false", "false"
    )


def test_the_gold_size_threshold_is_set_only_when_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(GOLD_INCREMENTAL_MIN_BYTES_ENV, raising=False)
    assert GOLD_INCREMENTAL_MIN_BYTES_CONF not in local_spark_conf(StorageRoot(tmp_path))

    monkeypatch.setenv(GOLD_INCREMENTAL_MIN_BYTES_ENV, "0")
    assert local_spark_conf(StorageRoot(tmp_path))[GOLD_INCREMENTAL_MIN_BYTES_CONF] == "0"


def test_a_worker_thread_carries_the_task_label_only_while_it_runs_the_function(
    labelled: SparkSession,
) -> None:
    def tags_in_thread() -> set[str]:
        return set(labelled.getTags())

    with ThreadPoolExecutor(max_workers=1) as pool:
        untagged = pool.submit(tags_in_thread).result()
        during = pool.submit(with_job_tags(labelled, tags_in_thread)).result()
        after = pool.submit(tags_in_thread).result()  # the same thread, reused

    assert (untagged, during, after) == (set(), {CONTEXT.label}, set())
