"""Resident memory (PSS) of process trees, read with psutil: what the stack holds."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

import psutil


def _process_table() -> tuple[dict[int, psutil.Process], defaultdict[int, list[int]]]:
    """Every running process by pid, and each pid's children: one pass over the table."""
    processes: dict[int, psutil.Process] = {}
    children: defaultdict[int, list[int]] = defaultdict(list)
    for process in psutil.process_iter(["ppid"]):
        processes[process.pid] = process
        children[process.info["ppid"]].append(process.pid)
    return processes, children


def _tree(pids: Iterable[int], children: Mapping[int, list[int]],
          running: Mapping[int, psutil.Process]) -> set[int]:
    """The running processes among ``pids`` and all their descendants, each once."""
    seen: set[int] = set()
    pending = [pid for pid in pids if pid in running]
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        pending.extend(children.get(pid, ()))
    return seen


JVM = "java"


def _resident_bytes(process: psutil.Process) -> int:
    """The process's proportional set size (PSS: shared pages split among their sharers).

    Summing RSS over many processes counts each shared library once per process; PSS sums to
    what the processes really hold together. Falls back to RSS where PSS cannot be read. A JVM
    (Spark's, Kafka's) is read as RSS, from the kernel's counters: its memory is its own heap
    and code, so RSS is its PSS within a few MiB, and reading PSS walks its whole memory map (GBs
    mapped) while holding the lock its allocations need. With the walk once a second, the demo's
    builds took 5-15 s longer each day.
    """
    try:
        if process.name() == JVM:
            return int(process.memory_info().rss)
        try:
            memory = process.memory_full_info()
        except psutil.AccessDenied:  # another user's smaps; its RSS is still readable
            memory = process.memory_info()
    except psutil.Error:  # ended since the tree was read
        return 0
    return int(getattr(memory, "pss", memory.rss))  # PSS is Linux's; RSS elsewhere


def tree_rss_bytes(pids: Iterable[int]) -> int:
    """Resident bytes (PSS) of ``pids`` and all their descendants, each process counted once."""
    return trees_rss_bytes({"tree": pids})["tree"]


def trees_rss_bytes(trees: Mapping[str, Iterable[int]]) -> dict[str, int]:
    """``tree_rss_bytes`` of each named set of pids, from one pass over the process table; a
    process in several trees is read once (a read of a JVM's memory map takes ~10 ms)."""
    processes, children = _process_table()
    members = {name: _tree(pids, children, processes) for name, pids in trees.items()}
    resident = {pid: _resident_bytes(processes[pid]) for pid in set().union(*members.values())}
    return {name: sum(resident[pid] for pid in pids) for name, pids in members.items()}


class PeakMemory:
    """Samples ``trees_rss_bytes`` of named process trees in the background (each tree's pids
    asked for again at every sample); ``peaks`` holds each tree's highest."""

    def __init__(self, trees: Mapping[str, Callable[[], Iterable[int]]],
                 interval_seconds: float = 1.0) -> None:
        self._trees = dict(trees)
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self.peaks = dict.fromkeys(self._trees, 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = trees_rss_bytes({name: pids() for name, pids in self._trees.items()})
            self.peaks = {name: max(self.peaks[name], sample[name]) for name in self._trees}
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
