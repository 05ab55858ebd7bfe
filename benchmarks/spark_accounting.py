"""Which task started which Spark jobs and made which Delta commits, read back after a run.

Inside a job run every session names its task as ``<job>/<run_id>/<task_key>``
(``medallion.lakehouse.spark.label_for_task``): as a tag on each Spark job it starts, and as the
``userMetadata`` of each Delta commit. This module reads both back:

- Spark jobs from the warm driver's event log (``MEDALLION_SPARK_EVENT_LOG_DIR``): each
  ``SparkListenerJobStart`` lists its tags in the ``spark.job.tags`` property. Under Spark Connect
  a session tag reads ``SparkConnect_SessionTag_User_<user>_Session_<id>_Tag_<label>`` (a classic
  session's ``spark-session-<uuid>-<label>``), so a label is found by its prefix inside a tag.
- Delta commits from every table's ``_delta_log/<version>.json`` under a storage root: the
  ``commitInfo`` action's ``timestamp``, ``operation`` and ``userMetadata``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from medallion.lakehouse.tables import COMMIT_FILE

JOB_TAGS = "spark.job.tags"


@dataclass(frozen=True)
class SparkJob:
    """One Spark job: its id, its tags, and when it was submitted and ended (epoch ms)."""

    job_id: int
    tags: tuple[str, ...]
    submitted_ms: int
    ended_ms: int | None = None

    def label(self, prefix: str) -> str | None:
        """What follows ``prefix`` in the first tag that holds it (e.g. the task key), or None."""
        for tag in self.tags:
            position = tag.find(prefix)
            if position >= 0:
                return tag[position + len(prefix):]
        return None


@dataclass(frozen=True)
class Commit:
    """One Delta commit: the table (``schema.name``), its version, operation, time and label."""

    table: str
    version: int
    operation: str
    timestamp_ms: int
    user_metadata: str | None

    def label(self, prefix: str) -> str | None:
        """What follows ``prefix`` in the commit's ``userMetadata``, or None."""
        if self.user_metadata and self.user_metadata.startswith(prefix):
            return self.user_metadata[len(prefix):]
        return None

    @property
    def description(self) -> str:
        """``bronze.fx_rates WRITE``."""
        return f"{self.table} {self.operation}"


def event_log_files(directory: Path) -> list[Path]:
    """The event log files of every application that logged to ``directory``."""
    return sorted(
        path for path in directory.iterdir()
        if path.is_file() and not path.name.startswith(".") and not path.name.endswith(".crc")
    )


def read_spark_jobs(lines: Iterable[str]) -> list[SparkJob]:
    """The Spark jobs of an event log (JSON lines), in submission order."""
    started: dict[int, SparkJob] = {}
    ended: dict[int, int] = {}
    for line in lines:
        # Most lines are task and SQL events, some with large plans: skip them unparsed.
        if '"SparkListenerJobStart"' not in line and '"SparkListenerJobEnd"' not in line:
            continue
        event = json.loads(line)
        if event["Event"] == "SparkListenerJobStart":
            tags = str(event.get("Properties", {}).get(JOB_TAGS) or "")
            started[event["Job ID"]] = SparkJob(
                event["Job ID"], tuple(tag for tag in tags.split(",") if tag),
                int(event["Submission Time"]),
            )
        elif event["Event"] == "SparkListenerJobEnd":
            ended[event["Job ID"]] = int(event["Completion Time"])
    return [
        SparkJob(job.job_id, job.tags, job.submitted_ms, ended.get(job.job_id))
        for job in sorted(started.values(), key=lambda job: (job.submitted_ms, job.job_id))
    ]


def read_event_log_jobs(directory: Path) -> list[SparkJob]:
    """Every Spark job logged to ``directory`` (one file per application)."""
    jobs: list[SparkJob] = []
    for path in event_log_files(directory):
        with path.open(encoding="utf-8") as handle:
            jobs.extend(read_spark_jobs(handle))
    return jobs


def busy_seconds(jobs: Sequence[SparkJob]) -> float:
    """Wall seconds during which at least one of ``jobs`` ran (overlaps counted once)."""
    spans = sorted((job.submitted_ms, job.ended_ms) for job in jobs if job.ended_ms is not None)
    total, current_start, current_end = 0, None, None
    for start, end in spans:
        if current_end is None or current_start is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        total += current_end - current_start
    return total / 1000


Labelled = TypeVar("Labelled", SparkJob, Commit)


def _commit_info(path: Path) -> dict[str, object] | None:
    """The ``commitInfo`` action of one commit file, if it has one."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if '"commitInfo"' in line:
                info: dict[str, object] = json.loads(line)["commitInfo"]
                return info
    return None


def read_commits(storage_root: Path) -> list[Commit]:
    """Every Delta commit of every table under ``storage_root``, oldest first."""
    root = storage_root.resolve()
    commits = []
    for log_dir in root.rglob("_delta_log"):
        table = ".".join(log_dir.parent.relative_to(root).parts)
        for path in log_dir.iterdir():
            if not COMMIT_FILE.fullmatch(path.name):
                continue
            info = _commit_info(path)
            if info is None:
                continue
            metadata = info.get("userMetadata")
            commits.append(Commit(
                table, int(path.name.split(".")[0]), str(info.get("operation", "?")),
                int(str(info.get("timestamp", 0))), None if metadata is None else str(metadata),
            ))
    return sorted(commits, key=lambda commit: (commit.timestamp_ms, commit.table, commit.version))


def by_label(items: Iterable[Labelled], prefix: str) -> dict[str, list[Labelled]]:
    """``items`` grouped by the label after ``prefix`` (items without it are left out)."""
    grouped: dict[str, list[Labelled]] = {}
    for item in items:
        label = item.label(prefix)
        if label is not None:
            grouped.setdefault(label, []).append(item)
    return grouped


def describe_commits(commits: Iterable[Commit]) -> str:
    """``bronze.fx_rates WRITE, ops.dq_event_log WRITE x2``, in order of first appearance."""
    counts = Counter(commit.description for commit in commits)
    return ", ".join(
        description if count == 1 else f"{description} x{count}"
        for description, count in counts.items()
    )


def untagged(jobs: Iterable[SparkJob], prefixes: Sequence[str], start_ms: int,
             end_ms: int) -> Iterator[SparkJob]:
    """Jobs submitted in [start_ms, end_ms] that carry none of ``prefixes``."""
    for job in jobs:
        if start_ms <= job.submitted_ms <= end_ms and all(
            job.label(prefix) is None for prefix in prefixes
        ):
            yield job
