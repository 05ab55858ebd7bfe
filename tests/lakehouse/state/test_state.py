"""``medallion.lakehouse.state``: next-start positions per source, and resets that move loads
aside."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.locks import file_lock
from medallion.lakehouse.raw.landing import (
    LoadManifest,
    land_records,
    list_loads,
    load_dir,
    raw_zone,
    read_manifest,
)
from medallion.lakehouse.raw.replay import ReplayEnd, replay_end, replay_plan_path
from medallion.lakehouse.sources import crm, fx_rates, kafka_orders, redshift, snowflake
from medallion.lakehouse.sources.crm import extract_crm_accounts_to_raw
from medallion.lakehouse.sources.redshift import (
    HighWaterMark,
    read_high_water_mark,
    write_high_water_mark,
)
from medallion.lakehouse.state import (
    SourceState,
    raw_sources,
    redshift_mark_path,
    reset_state,
    show_state,
    state_dir,
)
from medallion.lakehouse.storage import StorageRoot
from medallion.platform import cli
from medallion.platform.cli import app
from medallion.platform.devstack.crm_api import CrmApiServer
from tests.lakehouse.sources.crm.conftest import account, load_accounts

DAY1, DAY2, DAY3 = date(2024, 3, 10), date(2024, 3, 11), date(2024, 3, 12)
LANDED_AT = datetime(2024, 3, 13, 1, tzinfo=UTC)
NOW = datetime(2024, 3, 14, 8, 30, tzinfo=UTC)
STAMP = "20240314T083000Z"

CRM_POSITIONS = {
    DAY1: {
        "since": "2000-01-01T00:00:00+00:00",
        "until": "2024-03-11T00:00:00+00:00",
        "watermark": "2024-03-10T12:00:00+00:00",
    },
    DAY2: {
        "since": "2024-03-07T12:00:00+00:00",
        "until": "2024-03-12T00:00:00+00:00",
        "watermark": "2024-03-11T10:00:00+00:00",
    },
    DAY3: {
        "since": "2024-03-08T10:00:00+00:00",
        "until": "2024-03-13T00:00:00+00:00",
        "watermark": "2024-03-12T09:30:00+00:00",
    },
}
MARK1 = HighWaterMark(datetime(2024, 3, 10, 23, 50, tzinfo=UTC), "E0003")
MARK2 = HighWaterMark(datetime(2024, 3, 11, 22, 10, tzinfo=UTC), "E0005")
MARK3 = HighWaterMark(datetime(2024, 3, 12, 21, 0, tzinfo=UTC), "E0009")
KAFKA_ENDS = {DAY1: {"0": 4, "1": 3}, DAY2: {"0": 7, "1": 5}, DAY3: {"0": 9, "1": 8}}


def land(
    root: Path,
    source: str,
    entity: str | None,
    load_dt: date,
    records: list[dict[str, Any]],
    positions: dict[str, Any],
) -> LoadManifest:
    return land_records(
        raw_zone(StorageRoot(root)), source, entity, load_dt, records,
        source_positions=positions, now=LANDED_AT,
    )


def land_crm(root: Path) -> None:
    """Three accounts loads of 3, 2 and 1 records."""
    for load_dt, count in ((DAY1, 3), (DAY2, 2), (DAY3, 1)):
        records = [
            account(n, CRM_POSITIONS[load_dt]["watermark"].replace("+00:00", "Z"))
            for n in range(count)
        ]
        land(root, "crm", "accounts", load_dt, records, CRM_POSITIONS[load_dt])


def land_redshift(root: Path, saved: HighWaterMark | None = MARK3) -> None:
    """Three behavior loads (to = MARK1..MARK3) and the mark file at ``saved``."""
    marks = {DAY1: (None, MARK1), DAY2: (MARK1, MARK2), DAY3: (MARK2, MARK3)}
    for load_dt, (start, end) in marks.items():
        events = [
            {
                "event_id": f"E{n:04d}",
                "event_type": "page_view",
                "event_ts": end.event_ts.isoformat(),
            }
            for n in range(3)
        ]
        positions = {
            "from": None if start is None else start.to_json(),
            "to": end.to_json(),
            "null_key_rows": 1,
        }
        land(root, "redshift", "behavior", load_dt, events, positions)
    if saved is not None:
        write_high_water_mark(redshift_mark_path(StorageRoot(root)), saved)


def land_kafka(root: Path) -> None:
    """Three orders loads; each starts at the previous one's end offsets."""
    start = {"0": 0, "1": 0}
    for load_dt, end in KAFKA_ENDS.items():
        messages = [
            {"order_id": f"O{p}{offset}", "_kafka_partition": int(p), "_kafka_offset": offset}
            for p in start
            for offset in range(start[p], end[p])
        ]
        positions = {"topic": "orders", "start": start, "end": end, "malformed": 0}
        land(root, "kafka", "orders", load_dt, messages, positions)
        start = end


def land_snowflake(root: Path) -> None:
    """Two full loads of 2 and 3 orders."""
    for load_dt, count in ((DAY1, 2), (DAY2, 3)):
        orders = [
            {"order_id": f"O{n}", "updated_at": f"{load_dt}T0{n}:00:00+00:00"} for n in range(count)
        ]
        positions = {"row_count": count, "max_updated_at": orders[-1]["updated_at"]}
        land(root, "snowflake", "orders", load_dt, orders, positions)


def land_fx_rates(root: Path) -> None:
    """Two daily pulls of two rates each."""
    for load_dt in (DAY1, DAY2):
        rates = [
            {"date": str(load_dt), "base": "USD", "currency": currency, "rate": 0.9}
            for currency in ("EUR", "GBP")
        ]
        land(root, "fx_rates", None, load_dt, rates, {"rate_date": str(load_dt), "base": "USD"})


def land_every_source(root: Path) -> None:
    land_crm(root)
    land_redshift(root)
    land_kafka(root)
    land_snowflake(root)
    land_fx_rates(root)


def files_under(directory: Path) -> dict[str, bytes]:
    """Every file below ``directory``, by relative path, with its bytes."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def reset_dir(root: Path, *parts: str) -> Path:
    return state_dir(StorageRoot(root)).resolve() / "resets" / STAMP / Path(*parts)


def state_of(root: Path, source: str) -> SourceState:
    return next(state for state in show_state(StorageRoot(root)) if state.source == source)


def test_sources_are_the_bronze_catalogs_named_as_the_extractors_name_them() -> None:
    assert [(s.source, s.entity, s.pattern) for s in raw_sources()] == [
        (crm.SOURCE, crm.ACCOUNTS_ENTITY, "watermark + lookback"),
        (redshift.SOURCE, redshift.ENTITY, "high-water mark"),
        (fx_rates.SOURCE, None, "daily pull"),
        (kafka_orders.SOURCE, kafka_orders.ENTITY, "offsets"),
        (snowflake.SOURCE, snowflake.ENTITY, "full"),
    ]


def test_state_paths() -> None:
    assert state_dir(StorageRoot("/lake")) == Path("/lake/_system/state")
    mark = redshift_mark_path(StorageRoot("/lake"))
    assert mark == Path("/lake/_system/state/redshift_behavior_mark.json")


def test_show_reports_where_each_source_starts_next(tmp_path: Path) -> None:
    land_every_source(tmp_path)

    states = show_state(StorageRoot(tmp_path))

    assert states == [
        SourceState(
            "crm", "accounts", "watermark + lookback", 3, DAY1, DAY3, 1,
            "2024-03-12T09:30:00+00:00", "load_dt=2024-03-12 watermark, less the lookback", (),
        ),
        SourceState(
            "redshift", "behavior", "high-water mark", 3, DAY1, DAY3, 3,
            {"event_ts": "2024-03-12T21:00:00+00:00", "event_id": "E0009"},
            "the mark file, equal to load_dt=2024-03-12 'to'", (),
        ),
        SourceState(
            "fx_rates", None, "daily pull", 2, DAY1, DAY2, 2, None, "no position (daily pull)", ()
        ),
        SourceState(
            "kafka", "orders", "offsets", 3, DAY1, DAY3, 5, {"0": 9, "1": 8},
            "load_dt=2024-03-12 end offsets of topic 'orders'", (),
        ),
        SourceState(
            "snowflake", "orders", "full", 2, DAY1, DAY2, 3, None, "no position (full)", ()
        ),
    ]  # fmt: skip


def test_show_on_an_empty_storage_root_starts_everything_from_the_beginning(
    tmp_path: Path,
) -> None:
    states = show_state(StorageRoot(tmp_path))

    summary = [(s.source, s.loads, s.latest_load, s.next_start, s.next_start_from) for s in states]
    assert summary == [
        ("crm", 0, None, None, "the beginning (no load)"),
        ("redshift", 0, None, None, "the beginning (no mark file, no load with a 'to' mark)"),
        ("fx_rates", 0, None, None, "no position (daily pull)"),
        ("kafka", 0, None, None, "the earliest offsets (no load)"),
        ("snowflake", 0, None, None, "no position (full)"),
    ]


@pytest.mark.parametrize(
    ("saved", "expected", "origin"),
    [
        (None, MARK3, "load_dt=2024-03-12 'to' (no mark file)"),
        (MARK2, MARK3, "load_dt=2024-03-12 'to' (the mark file is behind)"),
        (
            HighWaterMark(datetime(2024, 3, 13, 6, tzinfo=UTC), "E0012"),
            HighWaterMark(datetime(2024, 3, 13, 6, tzinfo=UTC), "E0012"),
            "the mark file (ahead of load_dt=2024-03-12 'to')",
        ),
    ],
)
def test_show_redshift_starts_from_the_later_of_the_mark_file_and_the_loads(
    tmp_path: Path, saved: HighWaterMark | None, expected: HighWaterMark, origin: str
) -> None:
    land_redshift(tmp_path, saved=saved)

    state = state_of(tmp_path, "redshift")

    assert (state.next_start, state.next_start_from) == (expected.to_json(), origin)


def test_show_lists_a_load_without_manifest_as_incomplete(tmp_path: Path) -> None:
    land_crm(tmp_path)
    unfinished = load_dir(raw_zone(StorageRoot(tmp_path)), "crm", "accounts", date(2024, 3, 13))
    unfinished.mkdir()
    (unfinished / "part-00000-0123456789abcdef.jsonl").write_text('{"customer_id": "C009"}\n')

    state = state_of(tmp_path, "crm")

    assert (state.loads, state.latest_load, state.incomplete) == (3, DAY3, (date(2024, 3, 13),))


def test_state_as_dict_is_json_ready(tmp_path: Path) -> None:
    land_kafka(tmp_path)

    content = state_of(tmp_path, "kafka").as_dict()

    assert json.loads(json.dumps(content)) == {
        "source": "kafka",
        "entity": "orders",
        "pattern": "offsets",
        "loads": 3,
        "first_load": "2024-03-10",
        "latest_load": "2024-03-12",
        "latest_rows": 5,
        "next_start": {"0": 9, "1": 8},
        "next_start_from": "load_dt=2024-03-12 end offsets of topic 'orders'",
        "incomplete": [],
    }


def test_reset_from_a_date_moves_exactly_the_loads_from_that_date(tmp_path: Path) -> None:
    land_crm(tmp_path)

    result = reset_state(StorageRoot(tmp_path), "crm", from_date=DAY2, now=NOW)

    destination = reset_dir(tmp_path, "crm", "accounts")
    assert (result.moved, result.remaining, result.destination) == (
        (DAY2, DAY3),
        (DAY1,),
        destination,
    )
    assert list_loads(raw_zone(StorageRoot(tmp_path)), "crm", "accounts") == [DAY1]
    assert sorted(path.name for path in destination.iterdir()) == [
        "load_dt=2024-03-11",
        "load_dt=2024-03-12",
    ]
    assert (result.before.next_start, result.after.next_start) == (
        "2024-03-12T09:30:00+00:00",
        "2024-03-10T12:00:00+00:00",
    )
    assert state_of(tmp_path, "crm") == result.after


def test_moved_loads_keep_their_manifest_and_bytes(tmp_path: Path) -> None:
    land_crm(tmp_path)
    originals = {
        load_dt: load_dir(raw_zone(StorageRoot(tmp_path)), "crm", "accounts", load_dt)
        for load_dt in (DAY2, DAY3)
    }
    manifests = {load_dt: read_manifest(path).to_json() for load_dt, path in originals.items()}
    contents = {load_dt: files_under(path) for load_dt, path in originals.items()}

    reset_state(StorageRoot(tmp_path), "crm", from_date=DAY2, now=NOW)

    for load_dt, original in originals.items():
        moved = reset_dir(tmp_path, "crm", "accounts", original.name)
        assert not original.exists()
        assert read_manifest(moved).to_json() == manifests[load_dt]  # checksums verified too
        assert files_under(moved) == contents[load_dt]


def test_reset_moves_incomplete_loads_in_the_range_only(tmp_path: Path) -> None:
    land_crm(tmp_path)
    raw_root = raw_zone(StorageRoot(tmp_path))
    for load_dt in (date(2024, 3, 9), date(2024, 3, 13)):
        load_dir(raw_root, "crm", "accounts", load_dt).mkdir()

    result = reset_state(StorageRoot(tmp_path), "crm", from_date=DAY3, now=NOW)

    assert result.moved == (DAY3, date(2024, 3, 13))
    assert sorted(path.name for path in (raw_root / "crm" / "accounts").iterdir()) == [
        "load_dt=2024-03-09",
        "load_dt=2024-03-10",
        "load_dt=2024-03-11",
    ]


def test_reset_of_every_load_starts_the_source_from_the_beginning(tmp_path: Path) -> None:
    land_crm(tmp_path)

    result = reset_state(StorageRoot(tmp_path), "crm", now=NOW)

    assert (result.moved, result.remaining) == ((DAY1, DAY2, DAY3), ())
    assert list_loads(raw_zone(StorageRoot(tmp_path)), "crm", "accounts") == []
    assert (result.after.next_start, result.after.next_start_from) == (
        None,
        "the beginning (no load)",
    )


def test_reset_result_as_dict_is_json_ready(tmp_path: Path) -> None:
    land_redshift(tmp_path)

    result = reset_state(StorageRoot(tmp_path), "redshift", from_date=DAY3, now=NOW)

    content = json.loads(json.dumps(result.as_dict()))
    assert content == {
        "source": "redshift",
        "entity": "behavior",
        "from_date": "2024-03-12",
        "moved": ["2024-03-12"],
        "destination": str(reset_dir(tmp_path, "redshift", "behavior")),
        "remaining": ["2024-03-10", "2024-03-11"],
        "before": result.before.as_dict(),
        "after": result.after.as_dict(),
        "mark_before": {"event_ts": "2024-03-12T21:00:00+00:00", "event_id": "E0009"},
        "mark_after": {"event_ts": "2024-03-11T22:10:00+00:00", "event_id": "E0005"},
    }
    assert content["after"]["next_start"] == content["mark_after"]


def test_reset_of_a_source_without_entity_keeps_its_layout(tmp_path: Path) -> None:
    land_fx_rates(tmp_path)

    result = reset_state(StorageRoot(tmp_path), "fx_rates", from_date=DAY2, now=NOW)

    assert result.destination == reset_dir(tmp_path, "fx_rates")
    assert read_manifest(result.destination / "load_dt=2024-03-11").load_dt == DAY2
    assert list_loads(raw_zone(StorageRoot(tmp_path)), "fx_rates") == [DAY1]


def test_reset_redshift_rewinds_the_mark_file_to_the_latest_remaining_to(tmp_path: Path) -> None:
    land_redshift(tmp_path)

    result = reset_state(StorageRoot(tmp_path), "redshift", from_date=DAY2, now=NOW)

    assert result.moved == (DAY2, DAY3)
    assert read_high_water_mark(redshift_mark_path(StorageRoot(tmp_path))) == MARK1
    assert (result.mark_before, result.mark_after) == (MARK3.to_json(), MARK1.to_json())
    assert (result.after.next_start, result.after.next_start_from) == (
        {"event_ts": "2024-03-10T23:50:00+00:00", "event_id": "E0003"},
        "the mark file, equal to load_dt=2024-03-10 'to'",
    )


def test_reset_of_every_redshift_load_removes_the_mark_file(tmp_path: Path) -> None:
    land_redshift(tmp_path)

    result = reset_state(StorageRoot(tmp_path), "redshift", now=NOW)

    assert not redshift_mark_path(StorageRoot(tmp_path)).exists()
    assert (result.mark_before, result.mark_after) == (MARK3.to_json(), None)
    assert result.after.next_start is None


def test_reset_kafka_starts_the_next_run_at_the_remaining_end_offsets(tmp_path: Path) -> None:
    land_kafka(tmp_path)

    result = reset_state(StorageRoot(tmp_path), "kafka", from_date=DAY3, now=NOW)

    assert (result.before.next_start, result.after.next_start) == (
        KAFKA_ENDS[DAY3],
        KAFKA_ENDS[DAY2],
    )


def test_reset_with_nothing_from_that_date_moves_nothing(tmp_path: Path) -> None:
    land_redshift(tmp_path)
    before = files_under(tmp_path / "raw")

    result = reset_state(StorageRoot(tmp_path), "redshift", from_date=date(2024, 3, 13), now=NOW)

    assert (result.moved, result.destination, result.remaining) == ((), None, (DAY1, DAY2, DAY3))
    assert result.after == result.before
    assert files_under(tmp_path / "raw") == before
    assert read_high_water_mark(redshift_mark_path(StorageRoot(tmp_path))) == MARK3
    assert not (state_dir(StorageRoot(tmp_path)) / "resets").exists()


def test_two_resets_at_the_same_instant_get_their_own_directories(tmp_path: Path) -> None:
    land_crm(tmp_path)

    first = reset_state(StorageRoot(tmp_path), "crm", from_date=DAY3, now=NOW)
    second = reset_state(StorageRoot(tmp_path), "crm", from_date=DAY2, now=NOW)

    assert first.destination == reset_dir(tmp_path, "crm", "accounts")
    resets = state_dir(StorageRoot(tmp_path)).resolve() / "resets"
    assert second.destination == resets / f"{STAMP}-2" / "crm" / "accounts"
    assert (first.moved, second.moved) == ((DAY3,), (DAY2,))


def test_reset_of_an_unknown_source_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        reset_state(StorageRoot(tmp_path), "salesforce")

    assert str(raised.value) == (
        "unknown source 'salesforce': expected one of crm, redshift, fx_rates, kafka, snowflake"
    )


def test_reset_refuses_a_naive_now(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a timezone-aware datetime"):
        reset_state(StorageRoot(tmp_path), "crm", now=datetime(2024, 3, 14, 8, 30))


@pytest.mark.parametrize(
    ("source", "lock_name", "land_source"),
    [("kafka", "kafka_orders.lock", land_kafka), ("crm", "state-crm.lock", land_crm)],
)
def test_reset_waits_for_the_lock_of_its_source(
    tmp_path: Path, source: str, lock_name: str, land_source: Any
) -> None:
    land_source(tmp_path)
    raw_root = raw_zone(StorageRoot(tmp_path))
    entity = "orders" if source == "kafka" else "accounts"
    results = []
    worker = threading.Thread(
        target=lambda: results.append(
            reset_state(StorageRoot(tmp_path), source, from_date=DAY3, now=NOW)
        )
    )

    with file_lock(tmp_path / "_system" / "locks" / lock_name):
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive()
        assert list_loads(raw_root, source, entity) == [DAY1, DAY2, DAY3]
    worker.join(timeout=10)

    assert [result.moved for result in results] == [(DAY3,)]
    assert list_loads(raw_root, source, entity) == [DAY1, DAY2]


def test_after_a_reset_the_crm_extractor_restarts_from_the_remaining_watermark(
    tmp_path: Path, crm_api: CrmApiServer
) -> None:
    lookback = timedelta(days=3)

    def extract(run_date: date) -> LoadManifest:
        return extract_crm_accounts_to_raw(
            StorageRoot(tmp_path), crm_api.url, run_date, lookback=lookback
        )

    # C001 is older than DAY3's own since (2024-03-08T10:00), within DAY2's (2024-03-07T12:00).
    load_accounts(crm_api, [account(1, "2024-03-08T00:00:00Z"), account(2, "2024-03-10T12:00:00Z")])
    extract(DAY1)
    load_accounts(crm_api, [account(3, "2024-03-11T10:00:00Z")])
    extract(DAY2)
    extract(DAY3)
    reset_state(StorageRoot(tmp_path), "crm", from_date=DAY2, now=NOW)

    rerun = extract(DAY3)

    assert dict(rerun.source_positions) == {
        "since": "2024-03-07T12:00:00+00:00",  # DAY1's watermark less the lookback
        "until": "2024-03-13T00:00:00+00:00",
        "watermark": "2024-03-11T10:00:00+00:00",
    }
    assert [record["customer_id"] for record in _records(rerun)] == ["C001", "C002", "C003"]


def test_cli_state_show_json(tmp_path: Path) -> None:
    land_every_source(tmp_path)

    result = CliRunner().invoke(
        app, ["state", "show", "--format", "json", "--storage-root", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    states = show_state(StorageRoot(tmp_path))
    assert json.loads(result.stdout) == [state.as_dict() for state in states]


def test_cli_state_show_table_has_a_row_per_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    land_crm(tmp_path)
    monkeypatch.setattr(cli.console, "_width", 200)  # a wide terminal: one line per row

    result = CliRunner().invoke(app, ["state", "show", "--storage-root", str(tmp_path)])

    assert result.exit_code == 0, result.output
    rows = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    assert rows == [
        [
            "crm/accounts", "3", "2024-03-10 .. 2024-03-12", "1", '"2024-03-12T09:30:00+00:00"',
            "load_dt=2024-03-12 watermark, less the lookback",
        ],
        [
            "redshift/behavior", "0", "-", "-", "-",
            "the beginning (no mark file, no load with a 'to' mark)",
        ],
        ["fx_rates", "0", "-", "-", "-", "no position (daily pull)"],
        ["kafka/orders", "0", "-", "-", "-", "the earliest offsets (no load)"],
        ["snowflake/orders", "0", "-", "-", "-", "no position (full)"],
    ]  # fmt: skip


def test_cli_state_reset_moves_the_loads_and_says_where(tmp_path: Path) -> None:
    land_crm(tmp_path)

    result = CliRunner().invoke(
        app,
        ["state", "reset", "crm", "--from", "2024-03-11", "--yes", "--storage-root", str(tmp_path)],
    )

    assert result.exit_code == 0, result.output
    (stamp,) = (state_dir(StorageRoot(tmp_path)).resolve() / "resets").iterdir()
    assert result.stdout.splitlines() == [
        f"crm: moved 2024-03-11, 2024-03-12 to {stamp / 'crm' / 'accounts'}",
        'next start before: "2024-03-12T09:30:00+00:00" '
        "(load_dt=2024-03-12 watermark, less the lookback)",
        'next start after: "2024-03-10T12:00:00+00:00" '
        "(load_dt=2024-03-10 watermark, less the lookback)",
    ]
    assert list_loads(raw_zone(StorageRoot(tmp_path)), "crm", "accounts") == [DAY1]


def test_cli_state_reset_of_every_redshift_load_says_the_mark_file_is_removed(
    tmp_path: Path,
) -> None:
    land_redshift(tmp_path)

    result = CliRunner().invoke(
        app, ["state", "reset", "redshift", "--yes", "--storage-root", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "redshift mark file: removed"
    assert not redshift_mark_path(StorageRoot(tmp_path)).exists()


def test_cli_state_reset_without_yes_asks_first(tmp_path: Path) -> None:
    land_crm(tmp_path)

    result = CliRunner().invoke(
        app, ["state", "reset", "crm", "--storage-root", str(tmp_path)], input="n\n"
    )

    assert result.exit_code == 1
    assert "Move every load of crm to" in result.output
    assert list_loads(raw_zone(StorageRoot(tmp_path)), "crm", "accounts") == [DAY1, DAY2, DAY3]


def test_cli_state_reset_of_an_unknown_source_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["state", "reset", "salesforce", "--yes", "--storage-root", str(tmp_path)]
    )

    assert result.exit_code == 2
    assert result.stderr == (
        "error: unknown source 'salesforce': expected one of crm, redshift, fx_rates, kafka, "
        "snowflake\n"
    )


def _records(manifest: LoadManifest) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in manifest.data_paths
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_reset_of_redshift_and_kafka_keeps_where_each_moved_load_ended(tmp_path: Path) -> None:
    land_redshift(tmp_path)
    land_kafka(tmp_path)

    reset_state(StorageRoot(tmp_path), "redshift", from_date=DAY2, now=NOW)
    reset_state(StorageRoot(tmp_path), "kafka", from_date=DAY2, now=NOW)

    assert [replay_end(StorageRoot(tmp_path), "redshift", day) for day in (DAY1, DAY2, DAY3)] == [
        None, ReplayEnd(MARK2.to_json()), ReplayEnd(MARK3.to_json())
    ]
    assert [replay_end(StorageRoot(tmp_path), "kafka", day) for day in (DAY1, DAY2, DAY3)] == [
        None, ReplayEnd(KAFKA_ENDS[DAY2]), ReplayEnd(KAFKA_ENDS[DAY3])
    ]
    plan = replay_plan_path(StorageRoot(tmp_path), "kafka")
    assert json.loads(plan.read_text())["reset"] == STAMP


def test_reset_of_a_full_load_source_keeps_no_replay_plan(tmp_path: Path) -> None:
    land_crm(tmp_path)
    land_snowflake(tmp_path)

    reset_state(StorageRoot(tmp_path), "crm", now=NOW)
    reset_state(StorageRoot(tmp_path), "snowflake", now=NOW)

    assert not (state_dir(StorageRoot(tmp_path)) / "replay").exists()
