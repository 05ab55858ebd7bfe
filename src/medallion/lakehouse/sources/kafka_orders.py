"""The Kafka ``orders`` extractor: a replayable stream landed in raw exactly once, by offsets.

The consumer position is not committed to Kafka and not kept in a state file: it lives in the raw
manifests (``source_positions = {"topic", "start": {partition: offset}, "end": {...}}``), so it can
only advance when the landed files and their manifest are durable. A run for ``run_date`` reads
each partition from the day's start offsets (the latest earlier load's end offsets, or the
earliest offsets when there is none) up to the end offsets observed when the run starts, and
lands all of it as ``raw/kafka/orders/load_dt=run_date``. A crash anywhere before the manifest is
published leaves the previous position in place; the rerun reads the same range again (plus
anything newer) and lands a superset, or identical content (a no-op). Never a duplicate across
loads, never a gap. A date replayed after a reset (``medallion state reset``) reads only up to
where its earlier load ended (``medallion.lakehouse.raw.replay``), so each day gets its own
messages back.

Grain of a landed record: one per Kafka message, ordered by (partition, offset); the value as
received (a JSON object, or ``_raw_value`` and ``_parse_error`` when it is not one), plus
``_kafka_partition``, ``_kafka_offset``, ``_kafka_timestamp`` (ms) and ``_kafka_key``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from medallion.lakehouse.errors import ConfigError, KafkaOffsetsLost, SourceUnavailable
from medallion.lakehouse.locks import file_lock
from medallion.lakehouse.raw import landing
from medallion.lakehouse.raw.landing import (
    MANIFEST_NAME,
    LoadManifest,
    land_records,
    list_loads,
    load_dir,
    peek_manifest,
    raw_zone,
)
from medallion.lakehouse.raw.replay import replay_end
from medallion.lakehouse.storage import StorageRoot

log = logging.getLogger(__name__)

SOURCE = "kafka"
ENTITY = "orders"
DEFAULT_TOPIC = "orders"
CONSUMER_GROUP = "medallion-raw-kafka-orders"  # librdkafka wants one; nothing is ever committed
BATCH_SIZE = 500
TIMEOUT_SECONDS = 120.0  # the longest a whole range may take to consume
BROKER_TIMEOUT_SECONDS = 30.0  # the longest one metadata or offsets request may wait
SLEEP_PER_BATCH_ENV = "MEDALLION_KAFKA_TEST_SLEEP_PER_BATCH"
CRASH_BEFORE_MANIFEST_ENV = "MEDALLION_TEST_CRASH_BEFORE_MANIFEST"
CRASH_EXIT_CODE = 137
# The order event's fields, and what the extractor adds to each landed record.
EVENT_COLUMNS: tuple[str, ...] = ("order_id", "customer_id", "amount", "currency", "event_ts", "op")
METADATA_COLUMNS: tuple[str, ...] = (
    "_kafka_partition", "_kafka_offset", "_kafka_timestamp", "_kafka_key",
    "_raw_value", "_raw_value_base64", "_parse_error",
)


@dataclass(frozen=True)
class OffsetRange:
    """Per-partition ``[start, end)`` offsets of one topic: what one load holds."""

    topic: str
    start: Mapping[int, int]
    end: Mapping[int, int]

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``source_positions`` form (partitions as string keys)."""
        return {
            "topic": self.topic,
            "start": {str(p): offset for p, offset in sorted(self.start.items())},
            "end": {str(p): offset for p, offset in sorted(self.end.items())},
        }

    @classmethod
    def from_json(cls, content: Mapping[str, Any], where: Path) -> OffsetRange:
        """Parse ``to_json``'s output; ``ConfigError`` naming ``where`` when malformed."""
        try:
            return cls(
                topic=str(content["topic"]),
                start={int(p): int(o) for p, o in content["start"].items()},
                end={int(p): int(o) for p, o in content["end"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ConfigError(
                f"{where}: expected source_positions {{'topic', 'start': {{partition: offset}}, "
                f"'end': {{partition: offset}}}}, found {dict(content)!r:.200}; {error!r}"
            ) from error


def extract_kafka_orders_to_raw(
    storage_root: StorageRoot,
    bootstrap_servers: str,
    run_date: date,
    *,
    topic: str = DEFAULT_TOPIC,
    max_messages: int | None = None,
    timeout_seconds: float = BROKER_TIMEOUT_SECONDS,
) -> LoadManifest:
    """Land every message from the day's start offsets to the current end as ``load_dt=run_date``.

    - a load of ``run_date`` exists and is the latest: reread from its own start offsets, so a
      rerun lands a superset or the same content (a no-op), never an emptied day;
    - a later load exists: nothing is read, the existing load of ``run_date`` is returned;
    - otherwise: start at the end offsets of the latest earlier load (earliest offsets if none).

    ``max_messages`` caps how many messages this run lands (the end offsets then stop at the
    last message taken in each partition); a later run of the same day continues the range.
    ``timeout_seconds`` bounds each wait for the broker's metadata and offsets: a broker that
    does not answer by then is ``SourceUnavailable``.
    """
    if max_messages is not None and max_messages < 0:
        raise ConfigError(f"max_messages={max_messages}: expected None or at least 0")
    # Two runs at once would both start from the same landed end offsets: one run at a time.
    with file_lock(storage_root.locks / "kafka_orders.lock"):
        return _extract(
            storage_root, bootstrap_servers, run_date, topic, max_messages, timeout_seconds
        )


def _extract(
    storage_root: StorageRoot,
    bootstrap_servers: str,
    run_date: date,
    topic: str,
    max_messages: int | None,
    timeout_seconds: float,
) -> LoadManifest:
    """``extract_kafka_orders_to_raw`` under its lock."""
    raw_root = raw_zone(storage_root)
    landed = _landed_ranges(raw_root)
    if run_date in landed and max(landed) != run_date:
        return _read_manifest_json(raw_root, run_date)
    earlier = [load_dt for load_dt in landed if load_dt < run_date]
    previous = landed.get(run_date)
    if previous is None and earlier:
        previous = landed[max(earlier)]
    if previous is not None and previous.topic != topic:
        raise ConfigError(
            f"topic {topic!r}: raw/{SOURCE}/{ENTITY} already holds loads of topic "
            f"{previous.topic!r}; expected the same topic (positions are per topic)"
        )
    started = time.monotonic()
    consumer = _new_consumer(bootstrap_servers)
    try:
        watermarks = _watermarks(consumer, topic, bootstrap_servers, timeout_seconds)
        known_start = {} if previous is None else (
            previous.start if run_date in landed else previous.end
        )
        start = {p: known_start.get(p, low) for p, (low, _) in watermarks.items()}
        _check_reachable(topic, start, watermarks)
        records, end = _consume_range(
            consumer, topic, start, _end_offsets(storage_root, run_date, start, watermarks),
            max_messages,
        )
    finally:
        consumer.close()
    malformed = sum(1 for record in records if "_parse_error" in record)
    positions = {**OffsetRange(topic, start, end).to_json(), "malformed": malformed}
    manifest = _land(raw_root, run_date, records, positions)
    elapsed = time.monotonic() - started
    log.info(
        "kafka orders: %d messages (%d malformed) landed for %s from %s in %.2f s",
        manifest.row_count, malformed, run_date, topic, elapsed,
    )
    return manifest


def _end_offsets(
    storage_root: StorageRoot,
    run_date: date,
    start: Mapping[int, int],
    watermarks: Mapping[int, tuple[int, int]],
) -> dict[int, int]:
    """Read up to the high watermarks, or up to where this date's load ended before a reset.

    A date replayed after ``medallion state reset`` stops at its old end offsets (a partition it
    did not read then: at its start), so a full reload lands each day's messages on that day.
    """
    high = {partition: upper for partition, (_, upper) in watermarks.items()}
    replayed = replay_end(storage_root, SOURCE, run_date)
    if replayed is None:
        return high
    old_end = {int(partition): int(offset) for partition, offset in replayed.position.items()}
    return {
        partition: max(start[partition], min(upper, old_end.get(partition, start[partition])))
        for partition, upper in high.items()
    }


def message_to_record(message: Message) -> dict[str, Any]:
    """One landed record: the JSON object value as received, or its text with ``_parse_error``."""
    value = message.value()
    record: dict[str, Any]
    if value is None:
        record = {"_raw_value": None, "_parse_error": "empty value (tombstone)"}
    else:
        raw = bytes(value) if not isinstance(value, str) else value.encode("utf-8")
        try:
            parsed = json.loads(raw)
        except ValueError as error:
            record = {**_raw_value(raw), "_parse_error": f"not JSON: {error}"}
        else:
            if isinstance(parsed, dict):
                record = parsed
            else:
                record = {
                    **_raw_value(raw),
                    "_parse_error": f"expected a JSON object, found {type(parsed).__name__}",
                }
    key = message.key()
    timestamp_type, timestamp_ms = message.timestamp()
    record["_kafka_partition"] = message.partition()
    record["_kafka_offset"] = message.offset()
    record["_kafka_timestamp"] = timestamp_ms if timestamp_type else None
    record["_kafka_key"] = None if key is None else _text(key)
    return record


def _raw_value(raw: bytes) -> dict[str, str]:
    """The value as text, or as base64 (``_raw_value_base64``) when it is not UTF-8."""
    try:
        return {"_raw_value": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"_raw_value_base64": base64.b64encode(raw).decode("ascii")}


def _text(key: str | bytes) -> str:
    """A message key as text (non-UTF-8 keys as base64)."""
    if isinstance(key, str):
        return key
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(key).decode("ascii")


def _new_consumer(bootstrap_servers: str) -> Consumer:
    """A consumer that never commits and only sees committed (transactional) messages."""
    return Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": CONSUMER_GROUP,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "log_level": 0,
    })


def _watermarks(
    consumer: Consumer, topic: str, bootstrap_servers: str, timeout_seconds: float
) -> dict[int, tuple[int, int]]:
    """(low, high) offsets of every partition of ``topic``, read fresh from the broker."""
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_seconds).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            found = "no metadata" if metadata is None else (metadata.error or "no partitions")
            raise SourceUnavailable(
                f"source {SOURCE!r} at {bootstrap_servers}: expected topic {topic!r}; {found}"
            )
        return {
            partition: consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_seconds, cached=False
            )
            for partition in sorted(metadata.partitions)
        }
    except KafkaException as error:
        raise SourceUnavailable(
            f"source {SOURCE!r} at {bootstrap_servers}: cannot read offsets of {topic!r}; {error}"
        ) from error


def _check_reachable(
    topic: str, start: Mapping[int, int], watermarks: Mapping[int, tuple[int, int]]
) -> None:
    """Raise ``KafkaOffsetsLost`` when a start offset is outside what the partition holds."""
    for partition, offset in start.items():
        low, high = watermarks[partition]
        if not low <= offset <= high:
            raise KafkaOffsetsLost(
                f"{topic}[{partition}]: expected to resume at offset {offset}, but the partition "
                f"holds offsets {low}..{high}; messages were deleted (retention) or the topic "
                "was recreated, so exactly-once cannot be kept"
            )


def _consume_range(
    consumer: Consumer,
    topic: str,
    start: Mapping[int, int],
    end: Mapping[int, int],
    max_messages: int | None,
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Messages ``[start, end)`` of each partition, by (partition, offset), and the ends reached."""
    pending = {p for p in start if start[p] < end[p]}
    reached = dict(start)
    records: list[dict[str, Any]] = []
    if max_messages == 0 or not pending:
        return records, reached
    consumer.assign([TopicPartition(topic, p, start[p]) for p in sorted(pending)])
    sleep = float(os.environ.get(SLEEP_PER_BATCH_ENV) or 0)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while pending:
        if time.monotonic() > deadline:
            raise SourceUnavailable(
                f"source {SOURCE!r}: expected {topic!r} up to offsets {dict(end)} within "
                f"{TIMEOUT_SECONDS:.0f} s; reached {reached}"
            )
        for message in consumer.consume(BATCH_SIZE, timeout=1.0):
            partition = message.partition() or 0
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                # at the high watermark, which is at or past the end observed at the start
                pending.discard(partition)
                continue
            if error is not None:
                raise SourceUnavailable(f"source {SOURCE!r}: consuming {topic!r} failed: {error}")
            offset = message.offset() or 0
            if partition not in pending or offset >= end[partition]:
                pending.discard(partition)
                continue
            records.append(message_to_record(message))
            reached[partition] = offset + 1
            if reached[partition] >= end[partition]:
                pending.discard(partition)
            if max_messages is not None and len(records) >= max_messages:
                pending.clear()
                break
        log.info("kafka orders: consumed %d messages so far", len(records))
        if sleep:
            time.sleep(sleep)  # a test hook: slow the run down so it can be killed mid-way
    records.sort(key=lambda record: (record["_kafka_partition"], record["_kafka_offset"]))
    return records, reached


def anomalies_of(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Bad JSON, null keys and non-numeric amounts among landed order events."""
    return {
        "bad_json": sum(1 for record in records if "_parse_error" in record),
        "null_key:order_id": sum(
            1 for record in records
            if "_parse_error" not in record and record.get("order_id") is None
        ),
        "wrong_type:amount": sum(
            1 for record in records
            if record.get("amount") is not None and not _is_number(record["amount"])
        ),
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _land(
    raw_root: Path, run_date: date, records: Sequence[Mapping[str, Any]], positions: dict[str, Any]
) -> LoadManifest:
    """``land_records``, with a test hook that dies after the data files, before the manifest."""
    options: dict[str, Any] = {
        "source_positions": positions,
        "expected_columns": (*EVENT_COLUMNS, *METADATA_COLUMNS),
        "anomalies": anomalies_of(records),
    }
    if os.environ.get(CRASH_BEFORE_MANIFEST_ENV) != "1":
        return land_records(raw_root, SOURCE, ENTITY, run_date, records, **options)
    with _crash_instead_of_manifest():
        return land_records(raw_root, SOURCE, ENTITY, run_date, records, **options)


@contextlib.contextmanager
def _crash_instead_of_manifest() -> Iterator[None]:
    """Make the process exit (like SIGKILL) at the moment the manifest would be published."""
    original = landing._write_manifest

    def crash(manifest: LoadManifest) -> None:
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)

    landing._write_manifest = crash
    try:
        yield
    finally:
        landing._write_manifest = original


def _landed_ranges(raw_root: Path) -> dict[date, OffsetRange]:
    """The offset range of every complete ``kafka/orders`` load, by load date."""
    return {
        load_dt: OffsetRange.from_json(
            _read_manifest_json(raw_root, load_dt).source_positions,
            load_dir(raw_root, SOURCE, ENTITY, load_dt) / MANIFEST_NAME,
        )
        for load_dt in list_loads(raw_root, SOURCE, ENTITY)
    }


def _read_manifest_json(raw_root: Path, load_dt: date) -> LoadManifest:
    """A load's manifest, without re-hashing its data files."""
    return peek_manifest(load_dir(raw_root, SOURCE, ENTITY, load_dt))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: extract one day of the topic into raw; prints the manifest summary as JSON."""
    parser = argparse.ArgumentParser(prog="python -m medallion.lakehouse.sources.kafka_orders")
    parser.add_argument("--storage-root", required=True, type=StorageRoot)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--run-date", required=True, type=date.fromisoformat)
    parser.add_argument("--topic", default=DEFAULT_TOPIC)
    parser.add_argument("--max-messages", type=int, default=None)
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    manifest = extract_kafka_orders_to_raw(
        arguments.storage_root, arguments.bootstrap, arguments.run_date,
        topic=arguments.topic, max_messages=arguments.max_messages,
    )
    summary = {
        "load_dir": str(manifest.load_dir),
        "row_count": manifest.row_count,
        "source_positions": dict(manifest.source_positions),
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
