"""New loads: those the last complete build of their date did not read (the ingest job's gate)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.pipelines.checks import landed_summary
from medallion.lakehouse.raw.build_record import (
    BuildInputs,
    LoadKey,
    build_record_path,
    find_build_inputs,
    read_build_record,
    write_build_record,
)
from medallion.lakehouse.raw.landing import LoadManifest, land_records, raw_zone
from medallion.lakehouse.state import reset_state
from medallion.lakehouse.storage import StorageRoot

DAY1, DAY2 = date(2026, 11, 2), date(2026, 11, 3)
LANDED_AT = datetime(2026, 11, 3, 1, tzinfo=UTC)
RELANDED_AT = datetime(2026, 11, 4, 1, tzinfo=UTC)
SOURCES = ["snowflake/orders", "crm/accounts", "fx_rates"]
CRM_POSITIONS = {"since": None, "until": "2026-11-03T00:00:00+00:00",
                 "watermark": "2026-11-02T12:00:00+00:00"}


def orders(amount: str = "18.76") -> list[dict[str, Any]]:
    return [{"order_id": "ord_1", "order_amount": amount}, {"order_id": "ord_2",
                                                            "order_amount": "5.00"}]


def land_day(root: Path, day: date, *, now: datetime = LANDED_AT) -> dict[str, LoadManifest]:
    """One load per source: 2 orders, 3 accounts, 1 rate."""
    raw = raw_zone(StorageRoot(root))
    accounts = [{"id": f"acc_{n}", "lifecycle_stage": "lead"} for n in range(3)]
    return {
        "snowflake/orders": land_records(raw, "snowflake", "orders", day, orders(), now=now),
        "crm/accounts": land_records(raw, "crm", "accounts", day, accounts,
                                     source_positions=CRM_POSITIONS, now=now),
        "fx_rates": land_records(raw, "fx_rates", None, day, [{"currency": "EUR", "rate": "0.92"}],
                                 now=now),
    }


def build(root: Path, day: date) -> None:
    """What a complete build_analytics run of ``day`` leaves: the record of the loads it read."""
    storage_root = StorageRoot(root)
    write_build_record(
        storage_root, find_build_inputs(storage_root, SOURCES, day), run_id="run-1"
    )


def new_by_source(root: Path, days: list[date]) -> dict[str, tuple[int, int]]:
    summary = landed_summary(StorageRoot(root), SOURCES, days)
    return {name: (counts["new_loads"], counts["rows_new"])
            for name, counts in summary.by_source.items()}


def test_every_load_of_a_date_never_built_is_new(tmp_path: Path) -> None:
    land_day(tmp_path, DAY1)

    summary = landed_summary(StorageRoot(tmp_path), SOURCES, [DAY1])

    assert summary.as_dict() == {
        "dates": ["2026-11-02"], "expected_loads": 3, "complete_loads": 3, "files": 3, "rows": 6,
        "new_loads": 3, "rows_new": 6, "missing": [],
        "by_source": {
            "snowflake/orders": {"loads": 1, "files": 1, "rows": 2, "new_loads": 1, "rows_new": 2},
            "crm/accounts": {"loads": 1, "files": 1, "rows": 3, "new_loads": 1, "rows_new": 3},
            "fx_rates": {"loads": 1, "files": 1, "rows": 1, "new_loads": 1, "rows_new": 1},
        },
    }


def test_the_loads_the_last_build_read_are_not_new_after_an_unchanged_rerun(
    tmp_path: Path,
) -> None:
    land_day(tmp_path, DAY1)
    build(tmp_path, DAY1)

    land_day(tmp_path, DAY1, now=RELANDED_AT)  # the same records: landing them is a no-op
    summary = landed_summary(StorageRoot(tmp_path), SOURCES, [DAY1])

    assert (summary.rows, summary.new_loads, summary.rows_new) == (6, 0, 0)


def test_a_source_landed_again_with_other_content_is_new(tmp_path: Path) -> None:
    land_day(tmp_path, DAY1)
    build(tmp_path, DAY1)

    land_records(raw_zone(StorageRoot(tmp_path)), "snowflake", "orders", DAY1, orders("19.99"),
                 now=RELANDED_AT)

    assert new_by_source(tmp_path, [DAY1]) == {
        "snowflake/orders": (1, 2), "crm/accounts": (0, 0), "fx_rates": (0, 0),
    }


def test_a_full_reload_lands_new_manifests_so_its_loads_are_new_even_with_the_same_bytes(
    tmp_path: Path,
) -> None:
    before = land_day(tmp_path, DAY1)
    build(tmp_path, DAY1)

    reset_state(StorageRoot(tmp_path), "crm", from_date=DAY1, now=RELANDED_AT)
    after = land_day(tmp_path, DAY1, now=RELANDED_AT)

    assert after["crm/accounts"].sha256 == before["crm/accounts"].sha256
    assert new_by_source(tmp_path, [DAY1]) == {
        "snowflake/orders": (0, 0), "crm/accounts": (1, 3), "fx_rates": (0, 0),
    }


def test_a_build_covers_its_own_date_only(tmp_path: Path) -> None:
    land_day(tmp_path, DAY1)
    land_day(tmp_path, DAY2)
    build(tmp_path, DAY1)

    summary = landed_summary(StorageRoot(tmp_path), SOURCES, [DAY1, DAY2])

    assert (summary.complete_loads, summary.new_loads, summary.rows_new) == (6, 3, 6)


def test_the_build_inputs_are_each_load_manifest_key_and_leave_out_a_missing_source(
    tmp_path: Path,
) -> None:
    manifests = land_day(tmp_path, DAY1)

    inputs = find_build_inputs(StorageRoot(tmp_path), [*SOURCES, "kafka/orders"], DAY1)

    assert inputs == BuildInputs(DAY1, {
        name: LoadKey(manifest.sha256, "2026-11-03T01:00:00.000000+00:00", manifest.row_count)
        for name, manifest in manifests.items()
    })


def test_a_build_record_reads_back_as_what_was_written(tmp_path: Path) -> None:
    land_day(tmp_path, DAY1)
    inputs = find_build_inputs(StorageRoot(tmp_path), SOURCES, DAY1)

    path = write_build_record(StorageRoot(tmp_path), inputs, run_id="run-7")

    assert path == tmp_path / "_system" / "state" / "builds" / "2026-11-02.json"
    assert read_build_record(StorageRoot(tmp_path), DAY1) == inputs
    assert read_build_record(StorageRoot(tmp_path), DAY2) is None
    assert [p.name for p in path.parent.iterdir()] == ["2026-11-02.json"]  # no temporary left


def test_a_malformed_build_record_fails_naming_its_path(tmp_path: Path) -> None:
    path = build_record_path(StorageRoot(tmp_path), DAY1)
    path.parent.mkdir(parents=True)
    path.write_text('{"run_date": "2026-11-02", "loads": {"fx_rates": {"sha256": "ab"}}}')

    with pytest.raises(ConfigError, match=r"2026-11-02\.json: expected \{\"run_date\""):
        read_build_record(StorageRoot(tmp_path), DAY1)
