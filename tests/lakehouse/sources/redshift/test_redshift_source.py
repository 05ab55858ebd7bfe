"""The behavior extractor against the real PostgreSQL stand-in: marks, landing, crash safety."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from medallion.lakehouse.clients.redshift import POSTGRESQL, REDSHIFT, RedshiftSettings
from medallion.lakehouse.errors import SourceUnavailable
from medallion.lakehouse.raw.landing import read_manifest
from medallion.lakehouse.sources import redshift
from medallion.lakehouse.sources.redshift import (
    HighWaterMark,
    PostgresWarehouse,
    extract_behavior,
    extract_behavior_to_raw,
    load_behavior_events,
    read_high_water_mark,
)
from medallion.lakehouse.state import redshift_mark_path, reset_state
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import postgres
from medallion.platform.devstack.service import ServiceInfo
from tests.lakehouse.sources.redshift.conftest import T0, closed_port, event

DAY_1, DAY_2, DAY_3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


def ids(events: list[dict[str, Any]]) -> list[str]:
    """The event_ids, in order."""
    return [e["event_id"] for e in events]


def raw_event_ids(root: Path) -> list[str]:
    """Every event_id in every complete behavior load of ``root``, sorted, duplicates kept."""
    found = []
    for load in sorted((root / "raw" / "redshift" / "behavior").iterdir()):
        manifest = read_manifest(load)
        for path in manifest.data_paths:
            found += [json.loads(line)["event_id"] for line in path.read_text().splitlines()]
    return sorted(found)


def test_extract_all_returns_every_event_in_order_and_the_last_as_mark(
    warehouse: PostgresWarehouse,
) -> None:
    load_behavior_events(warehouse, [event(3, 2), event(1, 0), event(2, 1), event(4, 1)])

    events, mark = extract_behavior(warehouse, None)

    assert ids(events) == ["E0001", "E0002", "E0004", "E0003"]
    assert mark == HighWaterMark(T0.replace(minute=2), "E0003")
    assert events[0]["event_ts"] == "2026-11-01T08:00:00+00:00"


def test_second_extract_returns_exactly_the_new_events(warehouse: PostgresWarehouse) -> None:
    load_behavior_events(warehouse, [event(n, n) for n in range(1, 6)])
    _, mark = extract_behavior(warehouse, None)
    load_behavior_events(warehouse, [event(n, n) for n in range(6, 9)])

    events, new_mark = extract_behavior(warehouse, mark)

    assert ids(events) == ["E0006", "E0007", "E0008"]
    assert new_mark == HighWaterMark(T0.replace(minute=8), "E0008")


def test_pages_never_split_events_sharing_a_key(warehouse: PostgresWarehouse) -> None:
    duplicate = event(2, 1)
    load_behavior_events(warehouse, [event(1, 0), duplicate, duplicate, event(3, 2), event(4, 3)])

    events, _ = extract_behavior(warehouse, None, batch_size=2)

    assert ids(events) == ["E0001", "E0002", "E0002", "E0003", "E0004"]


def test_v2_columns_come_through_and_are_none_for_v1_rows(warehouse: PostgresWarehouse) -> None:
    load_behavior_events(
        warehouse, [event(1, 0), event(2, 1, referrer="https://a.example", app_version="2.1.0")]
    )

    events, _ = extract_behavior(warehouse, None)

    assert [(e["referrer"], e["app_version"]) for e in events] == [
        (None, None),
        ("https://a.example", "2.1.0"),
    ]
    assert list(events[0]) == list(redshift.BEHAVIOR_COLUMNS)


def test_two_runs_land_each_event_once_and_save_the_mark(
    warehouse: PostgresWarehouse, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "behavior_mark.json"
    load_behavior_events(warehouse, [event(n, n) for n in range(1, 4)])
    first = extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, DAY_1, state)
    load_behavior_events(warehouse, [event(n, n) for n in range(4, 6)])

    second = extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, DAY_2, state)

    assert (first.row_count, second.row_count) == (3, 2)
    assert raw_event_ids(tmp_path) == ["E0001", "E0002", "E0003", "E0004", "E0005"]
    assert second.source_positions["from"] == first.source_positions["to"]
    assert read_high_water_mark(state) == HighWaterMark(T0.replace(minute=5), "E0005")


def test_run_with_nothing_new_lands_an_empty_load(
    warehouse: PostgresWarehouse, tmp_path: Path
) -> None:
    state = tmp_path / "mark.json"
    load_behavior_events(warehouse, [event(1, 0)])
    extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, DAY_1, state)

    empty = extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, DAY_2, state)

    assert empty.row_count == 0
    assert empty.source_positions["from"] == empty.source_positions["to"]
    assert raw_event_ids(tmp_path) == ["E0001"]


def test_rerun_of_the_same_day_keeps_its_events(
    warehouse: PostgresWarehouse, tmp_path: Path
) -> None:
    state = tmp_path / "mark.json"
    load_behavior_events(warehouse, [event(1, 0), event(2, 1)])
    first = extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, DAY_1, state)

    again = extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, DAY_1, state)

    assert again.row_count == 2
    assert again.sha256 == first.sha256
    assert raw_event_ids(tmp_path) == ["E0001", "E0002"]


@pytest.mark.parametrize("rerun_date", [DAY_1, DAY_2], ids=["same_day", "next_day"])
def test_crash_before_the_mark_is_saved_lands_each_event_once(
    warehouse: PostgresWarehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rerun_date: date
) -> None:
    state = tmp_path / "mark.json"
    load_behavior_events(warehouse, [event(n, n) for n in range(1, 4)])

    def crash(*_: object) -> None:
        raise RuntimeError("killed after landing, before saving the mark")

    with monkeypatch.context() as patch:
        patch.setattr(redshift, "write_high_water_mark", crash)
        with pytest.raises(RuntimeError, match="before saving the mark"):
            extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, DAY_1, state)
    assert read_high_water_mark(state) is None
    load_behavior_events(warehouse, [event(4, 4)])

    extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, rerun_date, state)

    assert raw_event_ids(tmp_path) == ["E0001", "E0002", "E0003", "E0004"]
    assert read_high_water_mark(state) == HighWaterMark(T0.replace(minute=4), "E0004")


def test_rows_without_a_key_are_counted_not_extracted(
    warehouse: PostgresWarehouse, tmp_path: Path
) -> None:
    load_behavior_events(warehouse, [event(1, 0), event(2, 1, event_id=None)])

    manifest = extract_behavior_to_raw(
        StorageRoot(tmp_path), warehouse, DAY_1, tmp_path / "mark.json"
    )

    assert manifest.row_count == 1
    assert manifest.source_positions["null_key_rows"] == 1


def test_closed_port_raises_source_unavailable_without_the_password(
    pg_service: ServiceInfo,
) -> None:
    port = closed_port()
    secret = "n0t-in-any-message"

    settings = RedshiftSettings(POSTGRESQL, "127.0.0.1", port, "redshift_analytics", "medallion",
                                secret)

    with pytest.raises(SourceUnavailable) as raised:
        PostgresWarehouse.connect(settings, attempts=2, initial_wait_seconds=0.01)

    message = str(raised.value)
    assert f"'redshift' at 127.0.0.1:{port}/redshift_analytics" in message
    assert "last error:" in message
    assert secret not in message


def test_wrong_password_is_refused_without_echoing_it(
    pg_root: Path, pg_service: ServiceInfo
) -> None:
    settings = postgres.client_settings(StorageRoot(pg_root), info=pg_service)
    assert settings is not None
    secret = "wr0ng-passw0rd"

    with pytest.raises(SourceUnavailable) as raised:
        PostgresWarehouse.connect(settings.with_credentials(settings.user, secret), attempts=1)

    assert "password authentication failed" in str(raised.value)
    assert secret not in str(raised.value)


def test_high_water_mark_round_trips_through_json() -> None:
    mark = HighWaterMark(T0, "E0001")

    assert HighWaterMark.from_json(json.loads(json.dumps(mark.to_json()))) == mark


def test_redshift_connection_without_its_driver_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from medallion.lakehouse.errors import ConfigError

    monkeypatch.setitem(sys.modules, "redshift_connector", None)

    with pytest.raises(ConfigError, match="pip install redshift_connector"):
        redshift.RedshiftWarehouse.connect(RedshiftSettings(REDSHIFT, "h", 5439, "dev", "u", "p"))


def test_extract_up_to_a_mark_stops_there_across_pages(warehouse: PostgresWarehouse) -> None:
    load_behavior_events(warehouse, [event(n, n) for n in range(1, 6)])
    first_two = HighWaterMark(T0.replace(minute=1), "E0001")

    events, mark = extract_behavior(
        warehouse, first_two, batch_size=2, up_to=HighWaterMark(T0.replace(minute=4), "E0004")
    )

    assert ids(events) == ["E0002", "E0003", "E0004"]
    assert mark == HighWaterMark(T0.replace(minute=4), "E0004")


def test_after_a_reset_each_replayed_day_lands_its_own_events_again(
    warehouse: PostgresWarehouse, tmp_path: Path
) -> None:
    mark = redshift_mark_path(StorageRoot(tmp_path))
    load_behavior_events(warehouse, [event(n, n) for n in range(1, 4)])
    before_1 = extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, DAY_1, mark)
    load_behavior_events(warehouse, [event(n, n) for n in range(4, 6)])
    before_2 = extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, DAY_2, mark)
    reset_state(StorageRoot(tmp_path), "redshift", now=datetime(2026, 11, 4, tzinfo=UTC))
    load_behavior_events(warehouse, [event(6, 6)])

    replayed = [
        extract_behavior_to_raw(StorageRoot(tmp_path), warehouse, day, mark)
        for day in (DAY_1, DAY_2, DAY_3)
    ]

    assert [load.row_count for load in replayed] == [3, 2, 1]
    assert [load.sha256 for load in replayed[:2]] == [before_1.sha256, before_2.sha256]
    assert raw_event_ids(tmp_path) == [f"E{n:04d}" for n in range(1, 7)]
    assert read_high_water_mark(mark) == HighWaterMark(T0.replace(minute=6), "E0006")
