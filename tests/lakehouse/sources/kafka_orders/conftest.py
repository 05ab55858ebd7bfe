"""Fixtures: one real single-node KRaft broker for the module, and helpers to read raw back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from medallion.lakehouse.raw.landing import list_loads, load_dir, raw_zone, read_manifest
from medallion.lakehouse.sources.kafka_orders import ENTITY, SOURCE
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import kafka
from tests.platform.devstack.kafka.conftest import order_events

PARTITIONS = 3


def new_topic(bootstrap: str, name: str, count: int = 0) -> str:
    """Create topic ``name`` with ``PARTITIONS`` partitions and ``count`` order events in it."""
    kafka.ensure_topic(bootstrap, name, partitions=PARTITIONS)
    if count:
        kafka.produce_json(bootstrap, name, order_events(count), "order_id")
    return name


def produce_raw(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    """Produce ``values`` as they are (not JSON-encoded), all to partition 0, keyed ``k<i>``."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for index, value in enumerate(values):
        producer.produce(topic, value=value, key=f"k{index}".encode(), partition=0)
    assert producer.flush(30) == 0


def landed_records(storage_root: Path) -> list[dict[str, Any]]:
    """Every record of every complete ``kafka/orders`` load (checksums verified), oldest first."""
    raw_root = raw_zone(StorageRoot(storage_root))
    records: list[dict[str, Any]] = []
    for load_dt in list_loads(raw_root, SOURCE, ENTITY):
        manifest = read_manifest(load_dir(raw_root, SOURCE, ENTITY, load_dt))
        for path in manifest.data_paths:
            records.extend(json.loads(line) for line in path.read_text().splitlines())
    return records


def offsets_by_partition(records: list[dict[str, Any]]) -> dict[int, list[int]]:
    """Sorted ``_kafka_offset`` values per ``_kafka_partition`` (duplicates kept, to be seen)."""
    offsets: dict[int, list[int]] = {}
    for record in records:
        offsets.setdefault(record["_kafka_partition"], []).append(record["_kafka_offset"])
    return {partition: sorted(values) for partition, values in sorted(offsets.items())}


def high_watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of every partition of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-watermarks"})
    try:
        return {
            partition: consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            )[1]
            for partition in range(PARTITIONS)
        }
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def kafka_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The broker's storage root (raw zones of the tests live elsewhere)."""
    return tmp_path_factory.mktemp("kafka-orders-broker")


@pytest.fixture(scope="module")
def bootstrap(kafka_root: Path) -> Iterator[str]:
    """A running broker for the module, stopped at teardown; its bootstrap servers."""
    info = kafka.up(StorageRoot(kafka_root))
    yield info.details["bootstrap_servers"]
    kafka.down(StorageRoot(kafka_root))
