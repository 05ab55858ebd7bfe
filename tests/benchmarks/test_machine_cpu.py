"""Where the machine's CPU went during a window, from readings of every process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.machine_cpu import GC, IDLE, JIT, CpuReading, cpu_between, jvm_thread_seconds


def reading(at: float, processes: dict[int, tuple[str, float]],
            threads: dict[int, tuple[str, float]], idle: float) -> CpuReading:
    return CpuReading(at, processes, threads, idle)


def test_a_window_counts_each_group_from_the_reading_before_it_to_the_one_after() -> None:
    readings = [
        reading(0.0, {1: ("spark", 10.0), 2: ("kernels", 1.0)}, {9: (JIT, 5.0)}, idle=100.0),
        reading(1.0, {1: ("spark", 11.0), 2: ("kernels", 1.5)}, {9: (JIT, 5.5)}, idle=100.2),
        # kernel 2 ended; kernel 3 started inside the window; the JIT thread 9 exited
        reading(2.0, {1: ("spark", 12.5), 3: ("kernels", 0.25)}, {10: (GC, 0.5)}, idle=100.3),
        reading(3.0, {1: ("spark", 14.0), 3: ("kernels", 0.75)}, {10: (GC, 0.75)}, idle=101.0),
    ]

    used = cpu_between(readings, start=0.5, end=2.0)

    # kernel 2 until its last reading (0.5) and kernel 3 from zero (0.25); thread 9 likewise
    assert used == pytest.approx({"spark": 2.5, "kernels": 0.75, JIT: 0.5, GC: 0.5, IDLE: 0.3})


def test_a_window_outside_the_readings_takes_the_nearest_ones() -> None:
    readings = [reading(5.0, {1: ("runner", 1.0)}, {}, idle=3.0),
                reading(6.0, {1: ("runner", 2.0)}, {}, idle=3.5)]

    assert cpu_between(readings, start=0.0, end=9.0) == pytest.approx(
        {"runner": 1.0, IDLE: 0.5})
    assert cpu_between([], start=0.0, end=1.0) == {}


def test_the_jvm_s_compiler_and_gc_threads_are_read_by_name(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    task = tmp_path / "42" / "task"
    threads = {43: "C2 CompilerThre", 44: "GC Thread#0", 45: "Executor task l",
               46: "C1 CompilerThre"}
    for tid, name in threads.items():
        (task / str(tid)).mkdir(parents=True)
        # pid (comm) state, then 10 fields, utime and stime (the 14th and 15th fields)
        fields = ["S", *["0"] * 10, str(2 * ticks), str(ticks)]
        (task / str(tid) / "stat").write_text(f"{tid} ({name}) {' '.join(fields)} 0 0\n")

    assert jvm_thread_seconds(42, proc=tmp_path) == {43: (JIT, 3.0), 44: (GC, 3.0), 46: (JIT, 3.0)}
    assert jvm_thread_seconds(7, proc=tmp_path) == {}
