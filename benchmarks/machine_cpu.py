"""Where the machine's CPU went while a build ran: per group of processes, the Spark JVM's JIT
compiler and GC threads, and what stayed idle.

A warm small day on 2 cores is bound by CPU, not by waiting: the Spark JVM, the notebook kernels
and the runner share the cores, and any query of any task, on the critical path or not, delays
the day. ``CpuSampler`` reads every process's CPU time (``psutil``) and the machine's idle time
once a second on a thread of its own; ``cpu_between`` gives what each group used between two
moments, in core-seconds. A process that ended keeps its last reading, so a short-lived one
still counts (up to the last second it ran). The JVM's threads are read by name from
``/proc/<pid>/task`` (Linux; elsewhere the JVM is not split), as its compiler threads come and go.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

IDLE = "idle"
JIT, GC = "JIT compiler threads", "GC threads"


@dataclass(frozen=True)
class CpuReading:
    """Cumulative CPU seconds at one moment: per process (its group), per JVM thread kind,
    and the machine's idle time."""

    at: float  # time.time()
    processes: Mapping[int, tuple[str, float]]  # pid -> (group, CPU seconds so far)
    jvm_threads: Mapping[int, tuple[str, float]]  # tid -> (JIT or GC, CPU seconds so far)
    idle: float


def cpu_between(readings: Sequence[CpuReading], start: float, end: float) -> dict[str, float]:
    """Core-seconds per group (and ``JIT``, ``GC``, ``IDLE``) between ``start`` and ``end``.

    From the last reading at or before ``start`` (else the first) to the first at or after
    ``end`` (else the last). A process or thread missing from a reading keeps its last value;
    one that first appears inside the window counts from zero.
    """
    before = [reading for reading in readings if reading.at <= start] or list(readings[:1])
    after = [reading for reading in readings if reading.at >= end] or list(readings[-1:])
    if not before or not after:
        return {}
    first, last = readings.index(before[-1]), readings.index(after[0])
    opening = _carried(readings[: first + 1])
    closing = _carried(readings[: last + 1])
    used: dict[str, float] = {}
    for key, (group, seconds) in closing.items():
        used[group] = used.get(group, 0.0) + seconds - opening.get(key, (group, 0.0))[1]
    used[IDLE] = readings[last].idle - readings[first].idle
    return used


def _carried(readings: Sequence[CpuReading]) -> dict[tuple[str, int], tuple[str, float]]:
    """Every process and JVM thread seen so far, at its latest reading."""
    latest: dict[tuple[str, int], tuple[str, float]] = {}
    for reading in readings:
        latest.update({("pid", pid): value for pid, value in reading.processes.items()})
        latest.update({("tid", tid): value for tid, value in reading.jvm_threads.items()})
    return latest


class CpuSampler:
    """Reads the machine's CPU once per ``interval_seconds`` until stopped.

    ``group_of`` names a process's group (its command line decides); ``jvm`` gives the Spark
    JVM's pid, or None while there is none. The JVM's JIT and GC threads are counted apart from
    it: its group's figure is the rest of its threads.
    """

    def __init__(self, group_of: Callable[[psutil.Process], str], jvm: Callable[[], int | None],
                 *, interval_seconds: float = 1.0) -> None:
        self.readings: list[CpuReading] = []
        self._group_of, self._jvm, self._interval = group_of, jvm, interval_seconds
        self._groups: dict[int, str] = {}  # a process's group, decided once
        # Every JIT and GC thread seen, at its latest reading: an exited thread's CPU stays in
        # the JVM's total, so it stays subtracted from it.
        self._jvm_threads: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.readings.append(self.read())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.readings.append(self.read())
            self._stop.wait(self._interval)

    def read(self) -> CpuReading:
        """One reading of every process, the JVM's threads and the idle time."""
        jvm = self._jvm()
        threads = jvm_thread_seconds(jvm) if jvm is not None else {}
        self._jvm_threads.update(threads)
        processes: dict[int, tuple[str, float]] = {}
        for process in psutil.process_iter():
            try:
                times = process.cpu_times()
                seconds = times.user + times.system
                if process.pid == jvm:
                    seconds -= sum(value for _, value in self._jvm_threads.values())
                group = self._groups.get(process.pid)
                if group is None:
                    group = self._groups[process.pid] = self._group_of(process)
                processes[process.pid] = (group, seconds)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return CpuReading(time.time(), processes, threads, psutil.cpu_times().idle)


def jvm_thread_seconds(pid: int, proc: Path = Path("/proc")) -> dict[int, tuple[str, float]]:
    """The JIT compiler and GC threads of process ``pid``: tid -> (kind, CPU seconds so far).

    Read from ``<proc>/<pid>/task/<tid>/stat`` (the thread's name, then its user and system
    clock ticks); empty where there is no such directory.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        kind = JIT if "CompilerThre" in name else GC if "GC" in name else None
        if kind is not None:
            fields = stat[stat.rindex(")") + 2:].split()
            found[int(task.name)] = (kind, (int(fields[11]) + int(fields[12])) / ticks)
    return found
