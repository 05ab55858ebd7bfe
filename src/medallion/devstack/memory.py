"""Resident memory (PSS) of process trees, read from ``/proc`` (Linux): what the stack holds."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

PAGE_KIB = 1024


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(child) for child in task.read_text().split())
        except (OSError, ValueError):
            continue
    return found


def _resident_bytes(pid: int) -> int:
    """The process's proportional set size (PSS: shared pages split among their sharers).

    Summing RSS over many processes counts each shared library once per process; PSS sums to
    what the processes really hold together. Falls back to RSS where ``smaps_rollup`` is missing.
    """
    for source, field in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            for line in Path(source).read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1]) * PAGE_KIB
        except (OSError, ValueError, IndexError):
            continue
    return 0


def tree_rss_bytes(pids: Iterable[int]) -> int:
    """Resident bytes (PSS) of ``pids`` and all their descendants, each process counted once."""
    seen: set[int] = set()
    pending = list(pids)
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        pending.extend(_children(pid))
    return sum(_resident_bytes(pid) for pid in seen)


class PeakMemory:
    """Samples ``tree_rss_bytes(pids())`` in the background; ``peak_bytes`` is the highest seen."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval_seconds: float = 0.5) -> None:
        self._pids = pids
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self.peak_bytes = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self._pids()))
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
