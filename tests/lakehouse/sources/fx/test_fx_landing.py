"""The raw zone contract: manifest last and atomic, no-op re-lands, exact replaces."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from medallion.lakehouse.errors import ConfigError, RawLoadError
from medallion.lakehouse.raw.landing import (
    MANIFEST_NAME,
    LoadManifest,
    land_records,
    list_loads,
    load_dir,
    read_manifest,
)

LOAD_DT = date(2026, 11, 2)
LANDED_AT = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
RECORDS = [
    {"date": "2026-11-02", "base": "USD", "currency": "EUR", "rate": 0.9213},
    {"date": "2026-11-02", "base": "USD", "currency": "GBP", "rate": 0.7791},
    {"date": "2026-11-02", "base": "USD", "currency": "JPY", "rate": 151.606659},
]


def land(raw_root: Path, records: Any = RECORDS, **options: Any) -> LoadManifest:
    return land_records(raw_root, "fx_rates", None, LOAD_DT, records, now=LANDED_AT, **options)


def read_lines(manifest: LoadManifest) -> list[dict[str, Any]]:
    return [
        json.loads(line) for path in manifest.data_paths for line in path.read_text().splitlines()
    ]


def test_lands_records_as_json_lines_with_a_manifest(tmp_path: Path) -> None:
    manifest = land(tmp_path, source_positions={"rate_date": "2026-11-02"})

    assert manifest.load_dir == tmp_path / "fx_rates" / "load_dt=2026-11-02"
    assert (manifest.row_count, manifest.landed_at) == (3, LANDED_AT)
    assert manifest.source_positions == {"rate_date": "2026-11-02"}
    assert read_lines(manifest) == RECORDS
    assert sorted(p.name for p in manifest.load_dir.iterdir()) == sorted(
        [MANIFEST_NAME, *(f.name for f in manifest.files)]
    )
    assert read_manifest(manifest.load_dir) == manifest


def test_entity_is_a_directory_level(tmp_path: Path) -> None:
    manifest = land_records(tmp_path, "snowflake", "orders", LOAD_DT, RECORDS, now=LANDED_AT)

    assert manifest.load_dir == tmp_path / "snowflake" / "orders" / "load_dt=2026-11-02"
    assert list_loads(tmp_path, "snowflake", "orders") == [LOAD_DT]


def test_splits_into_files_of_rows_per_file(tmp_path: Path) -> None:
    manifest = land(tmp_path, rows_per_file=2)

    assert [f.row_count for f in manifest.files] == [2, 1]
    assert read_lines(manifest) == RECORDS


def test_relanding_identical_content_is_a_no_op(tmp_path: Path) -> None:
    first = land(tmp_path)
    files_before = {p.name: p.stat().st_mtime_ns for p in first.load_dir.iterdir()}

    again = land_records(
        tmp_path, "fx_rates", None, LOAD_DT, RECORDS, now=datetime(2026, 11, 3, tzinfo=UTC)
    )

    assert again == first
    assert again.landed_at == LANDED_AT
    assert {p.name: p.stat().st_mtime_ns for p in first.load_dir.iterdir()} == files_before


def test_different_content_replaces_the_load_exactly(tmp_path: Path) -> None:
    land(tmp_path, rows_per_file=1)
    corrected = [{**RECORDS[0], "rate": 0.5}]
    later = datetime(2026, 11, 3, tzinfo=UTC)

    manifest = land_records(tmp_path, "fx_rates", None, LOAD_DT, corrected, now=later)

    assert (manifest.row_count, manifest.landed_at) == (1, later)
    assert read_lines(manifest) == corrected
    assert sorted(p.name for p in manifest.load_dir.iterdir()) == sorted(
        [MANIFEST_NAME, manifest.files[0].name]
    )
    assert read_manifest(manifest.load_dir) == manifest


def test_changed_source_positions_replace_the_manifest(tmp_path: Path) -> None:
    land(tmp_path, source_positions={"offset": 1})

    manifest = land(tmp_path, source_positions={"offset": 2})

    assert read_manifest(manifest.load_dir).source_positions == {"offset": 2}


def test_a_failed_relanding_leaves_the_previous_load_intact(tmp_path: Path) -> None:
    first = land(tmp_path)

    def interrupted() -> Iterator[Mapping[str, Any]]:
        yield RECORDS[0]
        raise ConnectionResetError("source went away mid-read")

    with pytest.raises(ConnectionResetError):
        land(tmp_path, interrupted())

    assert read_manifest(first.load_dir) == first
    assert sorted(p.name for p in first.load_dir.iterdir()) == sorted(
        [MANIFEST_NAME, *(f.name for f in first.files)]
    )


def test_a_load_without_manifest_is_not_complete(tmp_path: Path) -> None:
    complete = land(tmp_path)
    half_written = load_dir(tmp_path, "fx_rates", None, date(2026, 11, 3))
    half_written.mkdir(parents=True)
    (half_written / "part-00000-0123456789abcdef.jsonl").write_text('{"rate": 1}\n')

    assert list_loads(tmp_path, "fx_rates") == [complete.load_dt]
    with pytest.raises(RawLoadError, match=r"no complete load at .*load_dt=2026-11-03: expected"):
        read_manifest(half_written)


def test_list_loads_of_an_unknown_source_is_empty(tmp_path: Path) -> None:
    assert list_loads(tmp_path, "crm", "accounts") == []


def test_read_manifest_rejects_a_file_whose_rows_changed(tmp_path: Path) -> None:
    manifest = land(tmp_path)
    with manifest.data_paths[0].open("a") as data:
        data.write('{"extra": true}\n')

    with pytest.raises(RawLoadError, match=r"manifest expects 3 rows, .*found 4 rows"):
        read_manifest(manifest.load_dir)


def test_read_manifest_rejects_a_missing_file(tmp_path: Path) -> None:
    manifest = land(tmp_path)
    manifest.data_paths[0].unlink()

    with pytest.raises(RawLoadError, match=r"lists part-00000-.*\.jsonl, which is missing"):
        read_manifest(manifest.load_dir)


def test_a_broken_load_is_replaced_even_by_identical_content(tmp_path: Path) -> None:
    manifest = land(tmp_path)
    manifest.data_paths[0].write_text("")

    relanded = land(tmp_path)

    assert read_lines(relanded) == RECORDS
    assert read_manifest(relanded.load_dir) == relanded


def test_database_values_are_landed_as_json_strings(tmp_path: Path) -> None:
    record = {"amount": Decimal("12.30"), "ts": datetime(2026, 11, 2, 6, 0, tzinfo=UTC)}

    manifest = land(tmp_path, [record])

    assert read_lines(manifest) == [{"amount": "12.30", "ts": "2026-11-02T06:00:00+00:00"}]


def test_rejects_a_naive_now_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="timezone-aware"):
        land_records(tmp_path, "fx_rates", None, LOAD_DT, RECORDS, now=datetime(2026, 11, 2))
    with pytest.raises(ConfigError, match=r"source '\.\./etc'"):
        land_records(tmp_path, "../etc", None, LOAD_DT, RECORDS)


def test_the_manifest_counts_unknown_columns_and_the_extractors_anomalies(
    tmp_path: Path,
) -> None:
    records = [
        {**RECORDS[0], "_debug_flag": True},
        {**RECORDS[1], "_debug_flag": None, "note": "x"},  # a null in an unknown column: no value
        {**RECORDS[2], "_debug_flag": False},
    ]

    manifest = land(tmp_path, records, expected_columns=("date", "base", "currency", "rate"),
                    anomalies={"wrong_type:rate": 2, "bad_json": 0})

    assert manifest.anomalies == {
        "unknown_column:_debug_flag": 2, "unknown_column:note": 1, "wrong_type:rate": 2,
    }
    assert read_lines(manifest) == records  # landed as received
    assert read_manifest(manifest.load_dir) == manifest


def test_a_manifest_without_anomalies_reads_as_none_found(tmp_path: Path) -> None:
    manifest = land(tmp_path)
    path = manifest.load_dir / MANIFEST_NAME
    content = json.loads(path.read_text())
    del content["anomalies"]  # written before the field existed
    path.write_text(json.dumps(content))

    assert read_manifest(manifest.load_dir).anomalies == {}
