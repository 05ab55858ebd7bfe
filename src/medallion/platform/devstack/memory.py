"""Resident memory (PSS) of process trees, read with psutil: what the stack holds."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable

import psutil


def _process_tree(pids: Iterable[int]) -> list[psutil.Process]:
    """The running processes among ``pids`` and all their descendants, each once."""
    # One pass over the process table finds every parent link, rather than one pass per root.
    processes: dict[int, psutil.Process] = {}
    children: defaultdict[int, list[int]] = defaultdict(list)
    for process in psutil.process_iter(["ppid"]):
        processes[process.pid] = process
        children[process.info["ppid"]].append(process.pid)
    seen: set[int] = set()
    pending = [pid for pid in pids if pid in processes]
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        pending.extend(children[pid])
    return [processes[pid] for pid in seen]


def _resident_bytes(process: psutil.Process) -> int:
    """The process's proportional set size (PSS: shared pages split among their sharers).

    Summing RSS over many processes counts each shared library once per process; PSS sums to
    what the processes really hold together. Falls back to RSS where PSS cannot be read.
    """
    try:
        try:
            memory = process.memory_full_info()
        except psutil.AccessDenied:  # another user's smaps; its RSS is still readable
            memory = process.memory_info()
    except psutil.Error:  # ended since the tree was read
        return 0
    return int(getattr(memory, "pss", memory.rss))  # PSS is Linux's; RSS elsewhere


def tree_rss_bytes(pids: Iterable[int]) -> int:
    """Resident bytes (PSS) of ``pids`` and all their descendants, each process counted once."""
    return sum(_resident_bytes(process) for process in _process_tree(pids))


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
