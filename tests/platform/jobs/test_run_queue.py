"""One run at a time per job and storage root, whichever runs folder each run uses."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from medallion.lakehouse.errors import JobRunFailed
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.bundle import load_bundle
from medallion.platform.jobs import JobRunResult, RunOptions, run_job
from medallion.platform.jobs.engine import RunObserver
from medallion.platform.jobs.model import JobSpec, parse_job
from medallion.platform.jobs.queue import job_lock_path
from tests.platform.jobs.conftest import FIXTURE_BUNDLE


class QueueRecorder(RunObserver):
    def __init__(self) -> None:
        self.queued: list[str] = []

    def job_queued(self, job: JobSpec, holder: str) -> None:
        self.queued.append(holder)


def queued_job(**changes: object) -> JobSpec:
    raw = {**load_bundle(FIXTURE_BUNDLE).jobs["queued_job"], **changes}
    return parse_job("queued_job", raw)


def test_a_second_run_on_the_same_data_waits_and_says_for_whom(tmp_path: Path) -> None:
    storage_root = tmp_path / "lakehouse"
    lock = job_lock_path(queued_job(), tmp_path / "runs-a", StorageRoot(str(storage_root)))
    holder_file = lock.with_name(f"{lock.name}.holder.json")

    def run(job: JobSpec, runs: str, seconds: str, observer: RunObserver) -> JobRunResult:
        parameters = {"marker_dir": str(tmp_path / "markers"),
                      "storage_root": str(storage_root), "seconds": seconds}
        options = RunOptions(runs_root=tmp_path / runs, compute="cold", kernel_pool=1,
                             observer=observer)
        return run_job(job, parameters, options)

    recorder = QueueRecorder()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(run, queued_job(), "runs-a", "4", RunObserver())
        deadline = time.monotonic() + 30
        while not holder_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Queueing disabled: refused at once, naming the run it would wait for.
        with pytest.raises(JobRunFailed, match=r"already running \(run \d{8}T\d{6}Z-\w{6} "):
            run(queued_job(queue={"enabled": False}), "runs-c", "0", RunObserver())
        second = pool.submit(run, queued_job(), "runs-b", "0", recorder)
        a, b = first.result(), second.result()

    assert lock == storage_root / "_system" / "locks" / "jobs" / "queued_job.lock"
    assert recorder.queued == [
        f"run {a.run_id} (pid {os.getpid()}, running since {a.started_at}, "
        f"notebooks in {a.run_dir})"
    ]
    assert (a.state, b.state) == ("SUCCESS", "SUCCESS")
    assert b.started_at >= a.ended_at  # the second ran after the first, not beside it
    assert not holder_file.exists()
