"""Stopping and restarting the broker: nothing left running, storage and messages kept."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import kafka
from medallion.platform.devstack.service import ServiceInfo, pick_port, port_is_free, service_dir
from tests.platform.devstack.kafka.conftest import broker_processes, order_events


@dataclass(frozen=True)
class Restart:
    """What was observed around one ``down`` and the ``up`` after it."""

    before: ServiceInfo
    down_result: bool
    processes_after_down: list[int]
    status_after_down: ServiceInfo | None
    meta_before: str
    after: ServiceInfo
    meta_after: str
    produced: list[dict[str, object]]
    replayed: list[dict[str, object]]


@pytest.fixture(scope="module")
def restart(kafka_root: Path) -> Iterator[Restart]:
    """Produce to a topic, ``down``, then ``up`` while the old port is taken, and replay it."""
    meta = service_dir(StorageRoot(kafka_root), kafka.NAME) / "data" / "meta.properties"
    before = kafka.up(StorageRoot(kafka_root))
    bootstrap = before.details["bootstrap_servers"]
    produced = order_events(200)
    kafka.ensure_topic(bootstrap, "orders")
    kafka.produce_json(bootstrap, "orders", produced, key_field="order_id")
    meta_before = meta.read_text()
    down_result = kafka.down(StorageRoot(kafka_root))
    processes_after_down = broker_processes(kafka_root)
    status_after_down = kafka.status(StorageRoot(kafka_root))
    old_port = int(bootstrap.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        # The old broker's closed connections may hold the port in TIME_WAIT: bind anyway.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            squatter.bind(("127.0.0.1", old_port))
            squatter.listen()
        except OSError:  # another test's broker took the freed port first: taken all the same
            assert not port_is_free(old_port)
        after = kafka.up(StorageRoot(kafka_root))
    replayed = kafka.consume_all(after.details["bootstrap_servers"], "orders", group_id="replay")
    yield Restart(
        before, down_result, processes_after_down, status_after_down, meta_before,
        after, meta.read_text(), produced, replayed,
    )
    kafka.down(StorageRoot(kafka_root))
    assert broker_processes(kafka_root) == []


def test_down_reports_it_stopped_a_running_broker(restart: Restart) -> None:
    assert restart.down_result is True


def test_down_leaves_no_broker_process(restart: Restart) -> None:
    assert restart.processes_after_down == []
    assert restart.status_after_down is None


def test_down_when_stopped_reports_nothing_to_stop(tmp_path: Path) -> None:
    assert kafka.down(StorageRoot(tmp_path)) is False


def test_up_after_down_reuses_the_formatted_storage(restart: Restart) -> None:
    assert restart.meta_after == restart.meta_before
    assert restart.after.details["cluster_id"] == restart.before.details["cluster_id"]
    assert restart.after.pid != restart.before.pid


def test_up_after_down_moves_to_a_free_port(restart: Restart) -> None:
    assert restart.after.url != restart.before.url


def test_up_after_down_replays_the_topics_messages(restart: Restart) -> None:
    assert sorted(restart.replayed, key=lambda record: str(record["order_id"])) == restart.produced


def test_a_start_that_loses_its_port_to_another_process_retries_on_free_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pick_port`` saw the port free, then someone else bound it before the broker did."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks: list[int] = []
        real_pick = pick_port

        def pick_then_lose(preferred: int) -> int:
            port = taken if not picks else real_pick(preferred)
            picks.append(port)
            return port

        monkeypatch.setattr(kafka, "pick_port", pick_then_lose)
        try:
            info = kafka.up(StorageRoot(tmp_path))
            bootstrap = info.details["bootstrap_servers"]

            assert picks[0] == taken
            assert bootstrap != f"127.0.0.1:{taken}"
            assert kafka.status(StorageRoot(tmp_path)) == info
            kafka.ensure_topic(bootstrap, "orders")
            kafka.produce_json(bootstrap, "orders", order_events(3), key_field="order_id")
            replayed = kafka.consume_all(bootstrap, "orders", group_id="check")
            assert [event["order_id"] for event in replayed] == [
                event["order_id"] for event in order_events(3)
            ]
        finally:
            kafka.down(StorageRoot(tmp_path))
    assert broker_processes(tmp_path) == []
