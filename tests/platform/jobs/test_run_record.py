"""A run is recorded from its start; a run whose runner died is found, marked and notified."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from medallion.platform.bundle import load_bundle
from medallion.platform.jobs import RunOptions, run_job
from medallion.platform.jobs.engine import RunObserver, reap_dead_runs
from medallion.platform.jobs.model import JobSpec, parse_job
from medallion.platform.jobs.notifications import Notification
from tests.platform.jobs.conftest import FIXTURE_BUNDLE


class Outbox:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)


class RecordAtStart(RunObserver):
    """Reads the run's record as the run begins."""

    def __init__(self) -> None:
        self.record: dict[str, Any] = {}

    def job_started(self, job: JobSpec, run_id: str, run_dir: Path,
                    parameters: Mapping[str, str]) -> None:
        self.record = json.loads((run_dir / "run.json").read_text())


def fixture_job(key: str) -> JobSpec:
    return parse_job(key, load_bundle(FIXTURE_BUNDLE).jobs[key])


def test_the_record_says_running_from_the_start(tmp_path: Path) -> None:
    observer = RecordAtStart()
    options = RunOptions(runs_root=tmp_path / "runs", compute="cold", kernel_pool=1,
                         observer=observer, notifier=Outbox())

    result = run_job(fixture_job("queued_job"), {"marker_dir": str(tmp_path)}, options)

    started = observer.record
    assert (started["state"], started["pid"], started["run_id"]) == (
        "RUNNING", os.getpid(), result.run_id
    )
    assert [(t["task_key"], t["state"]) for t in started["tasks"]] == [("nap", "PENDING")]
    final = json.loads((result.run_dir / "run.json").read_text())
    assert (final["state"], final["tasks"][0]["state"]) == ("SUCCESS", "SUCCESS")


def running_record(run_dir: Path, pid: int, started_at: float | None) -> Path:
    run_dir.mkdir(parents=True)
    path = run_dir / "run.json"
    path.write_text(json.dumps({
        "job_key": "failing_notify_job", "run_id": run_dir.name, "state": "RUNNING",
        "started_at": "2026-12-03T10:00:00+00:00", "parameters": {}, "pid": pid,
        "pid_started_at": started_at,
        "tasks": [{"task_key": "breaks", "state": "RUNNING", "error": None, "reason": None}],
    }))
    return path


def test_a_run_whose_runner_died_is_marked_and_notified_and_a_live_one_is_not(
    tmp_path: Path,
) -> None:
    job = fixture_job("failing_notify_job")
    runs = tmp_path / "runs"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = running_record(runs / job.key / "20261203T100000Z-dead01", gone.pid, None)
    alive_started = psutil.Process(os.getpid()).create_time()
    alive = running_record(runs / job.key / "20261203T100001Z-live01", os.getpid(), alive_started)
    outbox = Outbox()

    found = reap_dead_runs(job, runs, outbox)

    assert [(r.run_dir / "run.json", r.state) for r in found] == [(dead, "INTERNAL_ERROR")]
    assert found[0].tasks["breaks"].state == "FAILED"

    record = json.loads(dead.read_text())
    assert record["state"] == "INTERNAL_ERROR"
    assert record["state_message"].startswith(
        f"the runner (pid {gone.pid}) ended without finishing the run: killed or crashed"
    )
    assert [(t["state"], t["error"].split(":")[0]) for t in record["tasks"]] == [
        ("FAILED", "did not finish")
    ]
    assert json.loads(alive.read_text())["state"] == "RUNNING"
    assert [(n.event.value, n.run_id, n.recipients) for n in outbox.sent] == [
        ("on_failure", "20261203T100000Z-dead01", ("oncall@example.com",))
    ]
    assert outbox.sent[0].subject == (
        "[medallion] Run of failing_notify_job broke off (its runner died)"
    )
    assert reap_dead_runs(job, runs, outbox) == []  # found once


def test_jobs_status_finds_a_dead_run_and_lists_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = running_record(runs / "failing_notify_job" / "20261203T100000Z-dead01", gone.pid, None)

    shown = subprocess.run(
        [sys.executable, "-m", "medallion", "jobs", "status", "--bundle-root",
         str(FIXTURE_BUNDLE), "--runs-root", str(runs)],
        capture_output=True, text=True, check=True,
    ).stdout

    assert json.loads(dead.read_text())["state"] == "INTERNAL_ERROR"
    assert "failing_notify_job run 20261203T100000Z-dead01: INTERNAL_ERROR: the runner " \
        f"(pid {gone.pid}) ended without finishing the run" in " ".join(shown.split())
    assert "failing_notify_job 20261203T100000Z-dead01 INTERNAL_ERROR started" in shown
    outbox = (runs / "_notifications" / "outbox.jsonl").read_text()
    assert "[medallion] Run of failing_notify_job broke off (its runner died)" in outbox
