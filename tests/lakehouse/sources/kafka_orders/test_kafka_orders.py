"""The Kafka ``orders`` extractor against a real broker: day by day, malformed values, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from medallion.lakehouse.raw.landing import LoadManifest, list_loads, load_dir, raw_zone
from medallion.lakehouse.sources.kafka_orders import (
    CRASH_BEFORE_MANIFEST_ENV,
    CRASH_EXIT_CODE,
    ENTITY,
    SLEEP_PER_BATCH_ENV,
    SOURCE,
    extract_kafka_orders_to_raw,
)
from medallion.lakehouse.state import reset_state
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack.kafka import produce_json
from tests.platform.devstack.kafka.conftest import order_events

from .conftest import (
    PARTITIONS,
    high_watermarks,
    landed_records,
    new_topic,
    offsets_by_partition,
    produce_raw,
)

DAY_1, DAY_2, DAY_3 = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26)
FIRST, SECOND = 2_000, 500


@dataclass(frozen=True)
class TwoDays:
    """Two daily extractions of one topic, and what was produced before each."""

    storage_root: Path
    bootstrap: str
    topic: str
    day_1: LoadManifest
    day_2: LoadManifest
    ends_1: dict[int, int]
    ends_2: dict[int, int]
    seconds_1: float


@pytest.fixture(scope="module")
def two_days(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> TwoDays:
    """2,000 events extracted as day 1, then 500 more as day 2."""
    storage_root = tmp_path_factory.mktemp("two-days")
    topic = new_topic(bootstrap, "orders_two_days", FIRST)
    ends_1 = high_watermarks(bootstrap, topic)
    started = time.monotonic()
    day_1 = extract_kafka_orders_to_raw(StorageRoot(storage_root), bootstrap, DAY_1, topic=topic)
    seconds_1 = time.monotonic() - started
    produce_json(bootstrap, topic, order_events(SECOND, start=FIRST), "order_id")
    ends_2 = high_watermarks(bootstrap, topic)
    day_2 = extract_kafka_orders_to_raw(StorageRoot(storage_root), bootstrap, DAY_2, topic=topic)
    return TwoDays(storage_root, bootstrap, topic, day_1, day_2, ends_1, ends_2, seconds_1)


def _records(manifest: LoadManifest) -> list[dict[str, object]]:
    """The records of one load, in file order."""
    return [
        json.loads(line) for path in manifest.data_paths for line in path.read_text().splitlines()
    ]


def test_day_1_holds_every_produced_offset_and_key(two_days: TwoDays) -> None:
    records = _records(two_days.day_1)
    print(f"day 1: {FIRST} messages in {two_days.seconds_1:.2f} s "  # noqa: T201
          f"= {FIRST / two_days.seconds_1:,.0f} rows/s")
    assert {r["order_id"] for r in records} == {e["order_id"] for e in order_events(FIRST)}
    assert all(r["_kafka_key"] == r["order_id"] for r in records)
    assert offsets_by_partition(records) == {
        p: list(range(0, end)) for p, end in two_days.ends_1.items() if end
    }
    assert two_days.day_1.source_positions == {
        "topic": two_days.topic,
        "start": {str(p): 0 for p in range(PARTITIONS)},
        "end": {str(p): end for p, end in two_days.ends_1.items()},
        "malformed": 0,
    }


def test_day_2_holds_exactly_the_new_messages(two_days: TwoDays) -> None:
    records = _records(two_days.day_2)
    assert {r["order_id"] for r in records} == {
        e["order_id"] for e in order_events(SECOND, start=FIRST)
    }
    assert offsets_by_partition(records) == {
        p: list(range(two_days.ends_1[p], end))
        for p, end in two_days.ends_2.items()
        if end > two_days.ends_1[p]
    }


def test_rerun_of_the_latest_day_is_a_no_op(two_days: TwoDays) -> None:
    again = extract_kafka_orders_to_raw(
        StorageRoot(two_days.storage_root), two_days.bootstrap, DAY_2, topic=two_days.topic
    )
    assert again == two_days.day_2  # landed_at included: nothing was rewritten


def test_rerun_of_an_earlier_day_returns_its_load_untouched(two_days: TwoDays) -> None:
    again = extract_kafka_orders_to_raw(
        StorageRoot(two_days.storage_root), two_days.bootstrap, DAY_1, topic=two_days.topic
    )
    assert again == two_days.day_1


def test_malformed_values_are_landed_and_counted(bootstrap: str, tmp_path: Path) -> None:
    topic = new_topic(bootstrap, "orders_malformed")
    produce_raw(bootstrap, topic, [b'{"order_id": "O1"}', b"not json{", b"[1, 2]", b"\xff\xfe"])
    manifest = extract_kafka_orders_to_raw(StorageRoot(tmp_path), bootstrap, DAY_1, topic=topic)
    records = [{k: v for k, v in r.items() if k != "_kafka_timestamp"} for r in _records(manifest)]
    meta = [{"_kafka_partition": 0, "_kafka_offset": i, "_kafka_key": f"k{i}"} for i in range(4)]
    assert [{k: v for k, v in r.items() if k != "_parse_error"} for r in records] == [
        {"order_id": "O1", **meta[0]},
        {"_raw_value": "not json{", **meta[1]},
        {"_raw_value": "[1, 2]", **meta[2]},
        {"_raw_value_base64": "//4=", **meta[3]},
    ]
    assert ["_parse_error" in r for r in records] == [False, True, True, True]
    assert manifest.row_count == 4
    assert manifest.source_positions["malformed"] == 3


def _cli(storage_root: Path, bootstrap: str, run_date: date, topic: str) -> list[str]:
    """The extractor's command line for one day."""
    return [
        sys.executable, "-m", "medallion.lakehouse.sources.kafka_orders",
        "--storage-root", str(storage_root), "--bootstrap", bootstrap,
        "--run-date", run_date.isoformat(), "--topic", topic,
    ]


def _kill_run(command: list[str], kill_point: str) -> int:
    """Run the CLI and end it at ``kill_point``; its return code."""
    env = dict(os.environ)
    if kill_point == "while_consuming":
        env[SLEEP_PER_BATCH_ENV] = "0.5"
    if kill_point.startswith("before_manifest"):
        env[CRASH_BEFORE_MANIFEST_ENV] = "1"
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if kill_point == "at_start":
            process.send_signal(signal.SIGKILL)
        elif kill_point == "while_consuming":
            assert process.stderr is not None
            for line in process.stderr:  # the first consumed batch: the run is mid-way
                if b"consumed" in line:
                    process.send_signal(signal.SIGKILL)
                    break
        return process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    "kill_point", ["at_start", "while_consuming", "before_manifest", "before_manifest_next_day"]
)
def test_every_message_is_landed_exactly_once_after_a_kill(
    bootstrap: str, tmp_path: Path, kill_point: str
) -> None:
    topic = new_topic(bootstrap, f"orders_kill_{kill_point}", FIRST)
    extract_kafka_orders_to_raw(StorageRoot(tmp_path), bootstrap, DAY_1, topic=topic)
    produce_json(bootstrap, topic, order_events(FIRST, start=FIRST), "order_id")

    code = _kill_run(_cli(tmp_path, bootstrap, DAY_2, topic), kill_point)

    expected_code = CRASH_EXIT_CODE if kill_point.startswith("before_manifest") else -9
    assert code == expected_code
    assert list_loads(raw_zone(StorageRoot(tmp_path)), SOURCE, ENTITY) == [DAY_1]
    if kill_point.startswith("before_manifest"):  # the data files are there, unpublished
        day_2_dir = load_dir(raw_zone(StorageRoot(tmp_path)), SOURCE, ENTITY, DAY_2)
        assert [p.suffix for p in day_2_dir.iterdir()] == [".jsonl"]
    produce_json(bootstrap, topic, order_events(SECOND, start=2 * FIRST), "order_id")
    rerun_date = DAY_3 if kill_point.endswith("next_day") else DAY_2
    subprocess.run(_cli(tmp_path, bootstrap, rerun_date, topic), check=True, capture_output=True)

    records = landed_records(tmp_path)
    ends = high_watermarks(bootstrap, topic)
    assert offsets_by_partition(records) == {p: list(range(end)) for p, end in ends.items() if end}
    assert sorted(r["order_id"] for r in records) == [
        e["order_id"] for e in order_events(2 * FIRST + SECOND)
    ]
    assert list_loads(raw_zone(StorageRoot(tmp_path)), SOURCE, ENTITY) == [DAY_1, rerun_date]


def test_a_capped_run_is_continued_by_the_rerun_of_its_day(bootstrap: str, tmp_path: Path) -> None:
    topic = new_topic(bootstrap, "orders_capped", FIRST)
    capped = extract_kafka_orders_to_raw(
        StorageRoot(tmp_path), bootstrap, DAY_1, topic=topic, max_messages=100
    )
    full = extract_kafka_orders_to_raw(StorageRoot(tmp_path), bootstrap, DAY_1, topic=topic)

    assert capped.row_count == 100
    assert full.source_positions["start"] == capped.source_positions["start"]
    ends = high_watermarks(bootstrap, topic)
    assert offsets_by_partition(landed_records(tmp_path)) == {
        p: list(range(end)) for p, end in ends.items() if end
    }


def test_after_a_reset_each_replayed_day_lands_its_own_messages_again(
    bootstrap: str, tmp_path: Path
) -> None:
    topic = new_topic(bootstrap, "orders_replay", 300)
    day_1 = extract_kafka_orders_to_raw(StorageRoot(tmp_path), bootstrap, DAY_1, topic=topic)
    produce_json(bootstrap, topic, order_events(200, start=300), "order_id")
    day_2 = extract_kafka_orders_to_raw(StorageRoot(tmp_path), bootstrap, DAY_2, topic=topic)
    reset_state(StorageRoot(tmp_path), "kafka", now=datetime(2026, 11, 27, tzinfo=UTC))
    produce_json(bootstrap, topic, order_events(100, start=500), "order_id")

    replayed = [
        extract_kafka_orders_to_raw(StorageRoot(tmp_path), bootstrap, day, topic=topic)
        for day in (DAY_1, DAY_2, DAY_3)
    ]

    assert [load.row_count for load in replayed] == [300, 200, 100]
    assert [load.sha256 for load in replayed[:2]] == [day_1.sha256, day_2.sha256]
    ends = high_watermarks(bootstrap, topic)
    assert offsets_by_partition(landed_records(tmp_path)) == {
        p: list(range(end)) for p, end in ends.items() if end
    }
