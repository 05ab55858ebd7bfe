"""Fixtures: a real single-node KRaft broker per module, up at first use, down at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import kafka
from medallion.platform.devstack.service import ServiceInfo, service_dir


def broker_processes(storage_root: Path) -> list[int]:
    """Pids of every live process whose command line names this root's Kafka service dir."""
    marker = str(service_dir(StorageRoot(storage_root), kafka.NAME)).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def order_events(count: int, start: int = 0) -> list[dict[str, object]]:
    """``count`` order events shaped like the ``orders`` topic's, keyed by ``order_id``."""
    return [
        {
            "order_id": f"O{number:06d}",
            "customer_id": f"C{number % 97:04d}",
            "amount": round(10 + number * 0.37, 2),
            "currency": ("USD", "EUR", "GBP")[number % 3],
            "event_ts": f"2026-11-26T10:{number // 60 % 60:02d}:{number % 60:02d}Z",
            "op": "c",
        }
        for number in range(start, start + count)
    ]


@pytest.fixture(scope="module")
def kafka_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A storage root of the module's own."""
    return tmp_path_factory.mktemp("kafka-root")


@pytest.fixture(scope="module")
def broker(kafka_root: Path) -> Iterator[ServiceInfo]:
    """A running broker for the module; stopped (and checked gone) at teardown."""
    info = kafka.up(StorageRoot(kafka_root))
    yield info
    kafka.down(StorageRoot(kafka_root))
