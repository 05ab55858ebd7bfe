"""Reading back which task started which Spark jobs and made which Delta commits."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.spark_accounting import (
    Commit,
    SparkJob,
    busy_seconds,
    by_label,
    describe_commits,
    read_commits,
    read_spark_jobs,
)

PREFIX = "build_analytics/20261102T060000Z-abc123/"
CONNECT_TAG = "SparkConnect_SessionTag_User__Session_4f2a_Tag_" + PREFIX


def job_start(job_id: int, submitted: int, tags: str) -> str:
    return json.dumps({"Event": "SparkListenerJobStart", "Job ID": job_id,
                       "Submission Time": submitted, "Properties": {"spark.job.tags": tags}})


def job_end(job_id: int, completed: int) -> str:
    return json.dumps({"Event": "SparkListenerJobEnd", "Job ID": job_id,
                       "Completion Time": completed})


def test_jobs_are_read_with_their_tags_and_times_and_grouped_by_task() -> None:
    lines = [
        job_start(0, 1_000, f"SparkConnect_OperationTag_x,{CONNECT_TAG}bronze_fx_rates"),
        json.dumps({"Event": "SparkListenerTaskEnd"}),
        job_start(1, 1_500, f"{CONNECT_TAG}silver_fact_orders,spark-session-9"),
        job_end(0, 2_000),
        job_start(2, 1_800, "spark-session-9"),
        job_end(1, 2_500),
    ]

    jobs = read_spark_jobs(lines)

    assert [(job.job_id, job.submitted_ms, job.ended_ms) for job in jobs] == [
        (0, 1_000, 2_000), (1, 1_500, 2_500), (2, 1_800, None)
    ]
    grouped = by_label(jobs, PREFIX)
    assert {task: [job.job_id for job in found] for task, found in grouped.items()} == {
        "bronze_fx_rates": [0], "silver_fact_orders": [1]
    }


def test_busy_seconds_count_overlapping_jobs_once() -> None:
    jobs = [SparkJob(0, (), 1_000, 2_000), SparkJob(1, (), 1_500, 2_500),
            SparkJob(2, (), 4_000, 4_500), SparkJob(3, (), 5_000, None)]

    assert busy_seconds(jobs) == 2.0


def test_commits_are_read_from_every_delta_log_with_their_label(tmp_path: Path) -> None:
    log = tmp_path / "silver" / "fact_orders" / "_delta_log"
    log.mkdir(parents=True)
    for version, operation in enumerate(["WRITE", "MERGE"]):
        actions = [{"commitInfo": {"timestamp": 10 + version, "operation": operation,
                                   "userMetadata": f"{PREFIX}silver_fact_orders"}},
                   {"add": {"path": "part-0.parquet"}}]
        (log / f"{version:020d}.json").write_text("\n".join(map(json.dumps, actions)) + "\n")
    (log / "00000000000000000001.checkpoint.parquet").write_bytes(b"")

    commits = read_commits(tmp_path)

    assert commits == [
        Commit("silver.fact_orders", 0, "WRITE", 10, f"{PREFIX}silver_fact_orders"),
        Commit("silver.fact_orders", 1, "MERGE", 11, f"{PREFIX}silver_fact_orders"),
    ]
    assert list(by_label(commits, PREFIX)) == ["silver_fact_orders"]


def test_commits_are_described_by_table_and_operation_in_order() -> None:
    commits = [Commit("bronze.fx_rates", 0, "WRITE", 1, None),
               Commit("ops.dq_event_log", 3, "WRITE", 2, None),
               Commit("ops.dq_event_log", 4, "WRITE", 3, None)]

    assert describe_commits(commits) == "bronze.fx_rates WRITE, ops.dq_event_log WRITE x2"
