"""What the devstack reads of processes: the memory a tree holds, which process is our broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from medallion.platform.devstack import kafka, memory
from medallion.platform.devstack.memory import PeakMemory, tree_rss_bytes, trees_rss_bytes

MIB = 2**20
HOLD_64_MIB = "held = b'x' * (64 * 2**20)"


def started(code: str, *args: str) -> subprocess.Popen[str]:
    """A Python child running ``code``, returned once it runs (its /proc entry is complete)."""
    ready = "import time; print('ready', flush=True); time.sleep(60)"
    child = subprocess.Popen(
        [sys.executable, "-c", f"{code}; {ready}", *args], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    child.stdout.readline()
    return child


def ended(child: subprocess.Popen[str]) -> None:
    """Kill and reap ``child``, closing its pipe."""
    child.kill()
    child.communicate()


@pytest.fixture
def child_holding_64_mib() -> Iterator[subprocess.Popen[str]]:
    """A child of this test process that holds 64 MiB of its own."""
    child = started(HOLD_64_MIB)
    yield child
    ended(child)


def test_a_tree_holds_what_its_descendants_hold(
    child_holding_64_mib: subprocess.Popen[str],
) -> None:
    child = tree_rss_bytes([child_holding_64_mib.pid])
    tree = tree_rss_bytes([os.getpid()])

    assert child >= 64 * MIB
    assert tree > child


def test_a_process_named_twice_is_counted_once(
    child_holding_64_mib: subprocess.Popen[str],
) -> None:
    once = tree_rss_bytes([os.getpid()])
    twice = tree_rss_bytes([os.getpid(), child_holding_64_mib.pid, os.getpid()])

    assert twice == pytest.approx(once, rel=0.05)


def test_trees_read_in_one_pass_hold_what_each_holds_alone(
    child_holding_64_mib: subprocess.Popen[str],
) -> None:
    trees = {"child": [child_holding_64_mib.pid], "everything": [os.getpid()]}

    together = trees_rss_bytes(trees)

    assert together["child"] == pytest.approx(tree_rss_bytes(trees["child"]), rel=0.05)
    assert together["everything"] == pytest.approx(tree_rss_bytes(trees["everything"]),
                                                   rel=0.05)
    assert together["everything"] > together["child"] >= 64 * MIB


def test_peak_memory_keeps_each_trees_highest_sample() -> None:
    child = started(HOLD_64_MIB)
    with PeakMemory({"child": lambda: [child.pid]}, interval_seconds=0.05) as memory:
        try:
            deadline = time.monotonic() + 10
            while memory.peaks["child"] < 64 * MIB and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            ended(child)
        time.sleep(0.2)  # sampled after the child ended too: it holds nothing now

    assert memory.peaks["child"] >= 64 * MIB


class Jvm:
    """A process named like a JVM whose memory map must not be read."""

    def name(self) -> str:
        return "java"

    def memory_info(self) -> object:
        return type("Memory", (), {"rss": 3 * MIB})()

    def memory_full_info(self) -> object:
        raise AssertionError("a JVM's memory map was walked")


def test_a_jvm_is_read_from_its_counters_not_its_memory_map() -> None:
    assert memory._resident_bytes(Jvm()) == 3 * MIB


def test_a_process_that_is_gone_holds_nothing() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()

    assert tree_rss_bytes([gone.pid]) == 0


def test_the_broker_is_the_live_process_started_with_this_roots_config(tmp_path: Path) -> None:
    broker = started("pass", str(tmp_path / "server.properties"))
    try:
        assert kafka._is_our_broker(broker.pid, tmp_path) is True
        assert kafka._is_our_broker(broker.pid, tmp_path / "other-root") is False
    finally:
        ended(broker)
    assert kafka._is_our_broker(broker.pid, tmp_path) is False
