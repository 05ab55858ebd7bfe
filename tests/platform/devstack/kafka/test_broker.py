"""The Kafka stand-in's lifecycle and round trip against a real broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from medallion.lakehouse.errors import KafkaDeliveryFailed, KafkaJarsMissing
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import kafka
from medallion.platform.devstack.service import ServiceInfo
from tests.platform.devstack.kafka.conftest import order_events


def test_up_is_idempotent(kafka_root: Path, broker: ServiceInfo) -> None:
    assert kafka.up(StorageRoot(kafka_root)) == broker


def test_status_describes_the_running_broker(kafka_root: Path, broker: ServiceInfo) -> None:
    assert kafka.status(StorageRoot(kafka_root)) == broker
    assert broker.url == f"kafka://{broker.details['bootstrap_servers']}"


def test_ensure_topic_creates_once(broker: ServiceInfo) -> None:
    bootstrap = broker.details["bootstrap_servers"]
    assert kafka.ensure_topic(bootstrap, "created_once") is True
    assert kafka.ensure_topic(bootstrap, "created_once") is False


def test_consume_all_returns_exactly_the_produced_records(broker: ServiceInfo) -> None:
    bootstrap = broker.details["bootstrap_servers"]
    orders = order_events(1_000)
    kafka.ensure_topic(bootstrap, "orders_roundtrip")

    delivered = kafka.produce_json(bootstrap, "orders_roundtrip", orders, key_field="order_id")
    consumed = kafka.consume_all(bootstrap, "orders_roundtrip", group_id="roundtrip")

    assert delivered == 1_000
    assert len(consumed) == 1_000
    assert {record["order_id"] for record in consumed} == {order["order_id"] for order in orders}
    assert sorted(consumed, key=lambda record: str(record["order_id"])) == orders


def test_consume_all_resumes_after_the_groups_committed_offsets(broker: ServiceInfo) -> None:
    bootstrap = broker.details["bootstrap_servers"]
    kafka.ensure_topic(bootstrap, "orders_resume")
    kafka.produce_json(bootstrap, "orders_resume", order_events(10), key_field="order_id")
    kafka.consume_all(bootstrap, "orders_resume", group_id="resume")
    kafka.produce_json(bootstrap, "orders_resume", order_events(5, start=10), key_field="order_id")

    consumed = kafka.consume_all(bootstrap, "orders_resume", group_id="resume")

    assert [record["order_id"] for record in consumed] == [f"O{n:06d}" for n in range(10, 15)]


def test_produce_json_refuses_a_record_without_its_key(broker: ServiceInfo) -> None:
    bootstrap = broker.details["bootstrap_servers"]
    with pytest.raises(KafkaDeliveryFailed, match=r"record 1 .* has None"):
        kafka.produce_json(
            bootstrap, "orders_roundtrip", [{"order_id": "A"}, {"amount": 1}], key_field="order_id"
        )


def test_up_without_jars_names_make_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDALLION_KAFKA_JARS_DIR", str(tmp_path / "no-jars"))
    with pytest.raises(KafkaJarsMissing, match="make setup"):
        kafka.up(StorageRoot(tmp_path / "root"))
