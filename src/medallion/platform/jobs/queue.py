"""One run at a time per job and storage root: the run lock, and who holds it.

The lock sits beside the data a job writes (``<storage_root>/_system/locks/jobs/<job>.lock``), so
runs that keep their notebooks in different runs folders still queue behind each other, as the
Jobs service queues runs of one job (``max_concurrent_runs: 1``). The holder records itself beside
the lock, so a queued run can say whom it waits for and since when.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from medallion.lakehouse.errors import JobRunFailed
from medallion.lakehouse.locks import file_lock
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.jobs.model import JobSpec


def job_lock_path(job: JobSpec, runs_root: Path, storage_root: StorageRoot | None) -> Path:
    """Where runs of ``job`` queue: beside the data they write, whichever runs folder they use.

    A job without a storage root (it writes no lakehouse) queues in its runs folder.
    """
    if storage_root is not None:
        return storage_root.locks / "jobs" / f"{job.key}.lock"
    return runs_root / job.key / ".run.lock"


def _holder_path(lock: Path) -> Path:
    return lock.with_name(f"{lock.name}.holder.json")


def describe_lock_holder(lock: Path) -> str:
    """Who holds ``lock``: its run, process and since when (as its holder recorded them)."""
    try:
        holder = json.loads(_holder_path(lock).read_text(encoding="utf-8"))
        return (f"run {holder['run_id']} (pid {holder['pid']}, running since "
                f"{holder['since']}, notebooks in {holder['run_dir']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "a run that has not recorded itself yet"


def record_lock_holder(lock: Path, run_id: str, run_dir: Path, since: datetime) -> None:
    """Name the run holding ``lock``, for the runs queued behind it."""
    _holder_path(lock).write_text(json.dumps({
        "run_id": run_id, "pid": os.getpid(), "since": since.isoformat(), "run_dir": str(run_dir),
    }), encoding="utf-8")


@contextlib.contextmanager
def job_run_lock(job: JobSpec, lock: Path,
                 on_queued: Callable[[str], None] = lambda holder: None) -> Iterator[None]:
    """Serialise runs of one job (``max_concurrent_runs: 1``, the Jobs default), queueing them.

    A run that finds the lock held calls ``on_queued`` with whom it waits for, then waits (or,
    with queueing disabled, fails at once naming that run).
    """
    if job.max_concurrent_runs > 1:
        yield
        return
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(file_lock(lock, blocking=False))
        except BlockingIOError as error:
            holder = describe_lock_holder(lock)
            if not job.queue_enabled:
                raise JobRunFailed(
                    f"job {job.key!r} is already running ({holder}) and max_concurrent_runs is "
                    f"{job.max_concurrent_runs} with queueing disabled: run skipped"
                ) from error
            on_queued(holder)
            held.enter_context(file_lock(lock))
        try:
            yield
        finally:
            _holder_path(lock).unlink(missing_ok=True)
