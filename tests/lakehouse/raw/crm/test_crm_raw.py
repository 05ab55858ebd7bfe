"""``extract_crm_accounts_to_raw``: windows from landed manifests, lookback, reruns, limits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from medallion.lakehouse.errors import ConfigError, SourceResponseError
from medallion.lakehouse.raw.landing import LoadManifest, list_loads, raw_zone, read_manifest
from medallion.lakehouse.sources.crm import extract_crm_accounts_to_raw
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack.crm_api import CrmApiServer

from .conftest import TOKEN, account, landed, landed_ids, upsert

DAY0, DAY1, DAY2 = date(2024, 3, 9), date(2024, 3, 10), date(2024, 3, 11)
LOOKBACK = timedelta(days=3)
T1 = datetime(2024, 3, 12, 1, tzinfo=UTC)
T2 = datetime(2024, 3, 12, 2, tzinfo=UTC)
T3 = datetime(2024, 3, 12, 3, tzinfo=UTC)


def seed_day1(server: CrmApiServer) -> None:
    """Three accounts modified before DAY2, one modified on DAY2 (already there at day 1)."""
    upsert(
        server,
        [
            account(1, "2024-03-01T06:00:00Z"),
            account(2, "2024-03-05T06:00:00Z"),
            account(3, "2024-03-10T12:00:00Z"),
            account(4, "2024-03-11T06:00:00Z"),
        ],
    )


def seed_after_day1(server: CrmApiServer) -> None:
    """Changes upserted after day 1 was extracted (day-1 watermark 2024-03-10T12:00)."""
    upsert(
        server,
        [
            account(1, "2024-03-11T10:00:00Z", lifecycle_stage="churned"),  # changed
            account(5, "2024-03-11T09:00:00Z"),  # new
            # Late update inside the lookback (day-2 since = 2024-03-07T12:00).
            account(2, "2024-03-08T00:00:00Z", email="late@example.com"),
            # Late update older than the lookback: never extracted (the documented limit).
            account(6, "2024-03-06T00:00:00Z"),
        ],
    )


def run(root: Path, server: CrmApiServer, run_date: date, now: datetime) -> LoadManifest:
    return extract_crm_accounts_to_raw(
        StorageRoot(root), server.url, run_date, lookback=LOOKBACK, now=now
    )


def test_day1_lands_every_account_modified_before_day2(
    tmp_path: Path, crm_api: CrmApiServer
) -> None:
    seed_day1(crm_api)

    manifest = run(tmp_path, crm_api, DAY1, T1)

    raw = raw_zone(StorageRoot(tmp_path))
    assert manifest.load_dir == raw / "crm" / "accounts" / "load_dt=2024-03-10"
    assert (manifest.source, manifest.entity, manifest.load_dt) == ("crm", "accounts", DAY1)
    assert landed_ids(manifest) == {"C001", "C002", "C003"}
    assert manifest.row_count == 3
    assert dict(manifest.source_positions) == {
        "since": "2000-01-01T00:00:00+00:00",
        "until": "2024-03-11T00:00:00+00:00",
        "watermark": "2024-03-10T12:00:00+00:00",
    }
    assert read_manifest(manifest.load_dir) == manifest
    # Landed exactly as fetch_accounts_modified returns them: DESIGN.md columns, oldest first.
    first = landed(manifest)[0]
    assert first == {
        "customer_id": "C001",
        "name": "Customer 1",
        "email": "customer1@example.com",
        "phone": "+1-555-0001",
        "country": "US",
        "lifecycle_stage": "customer",
        "last_modified_date": "2024-03-01T06:00:00.000Z",
    }


def test_day2_lands_new_changed_late_and_lookback_records_only(
    tmp_path: Path, crm_api: CrmApiServer
) -> None:
    seed_day1(crm_api)
    run(tmp_path, crm_api, DAY1, T1)
    seed_after_day1(crm_api)

    manifest = run(tmp_path, crm_api, DAY2, T2)

    # C003: in the lookback window again; C004/C005: new; C001: changed; C002: late update
    # within the lookback. C006 (late, older than the lookback) is NOT landed: the limit.
    assert landed_ids(manifest) == {"C001", "C002", "C003", "C004", "C005"}
    assert manifest.row_count == 5
    by_id = {record["customer_id"]: record for record in landed(manifest)}
    assert by_id["C001"]["lifecycle_stage"] == "churned"
    assert by_id["C002"]["email"] == "late@example.com"
    assert dict(manifest.source_positions) == {
        "since": "2024-03-07T12:00:00+00:00",
        "until": "2024-03-12T00:00:00+00:00",
        "watermark": "2024-03-11T10:00:00+00:00",
    }
    assert list_loads(raw_zone(StorageRoot(tmp_path)), "crm", "accounts") == [DAY1, DAY2]


def test_late_update_older_than_the_lookback_is_missed(
    tmp_path: Path, crm_api: CrmApiServer
) -> None:
    seed_day1(crm_api)
    run(tmp_path, crm_api, DAY1, T1)
    # Last modified 2024-03-07T11:59:59, one second before day 2's since: never extracted.
    upsert(crm_api, [account(2, "2024-03-07T11:59:59Z", email="too-late@example.com")])

    day2 = run(tmp_path, crm_api, DAY2, T2)

    assert landed_ids(day2) == {"C003", "C004"}
    every_load = [record for load in (DAY1, DAY2) for record in landed(_manifest(tmp_path, load))]
    assert "too-late@example.com" not in {record["email"] for record in every_load}


def test_rerunning_day2_is_a_no_op(tmp_path: Path, crm_api: CrmApiServer) -> None:
    seed_day1(crm_api)
    run(tmp_path, crm_api, DAY1, T1)
    seed_after_day1(crm_api)
    first = run(tmp_path, crm_api, DAY2, T2)

    again = run(tmp_path, crm_api, DAY2, T3)

    assert again == first
    assert again.landed_at == T2
    assert read_manifest(again.load_dir).landed_at == T2
    assert sorted(path.name for path in again.load_dir.iterdir()) == sorted(
        [*(landed_file.name for landed_file in first.files), "_manifest.json"]
    )


def test_rerunning_the_latest_day_keeps_its_since_and_lands_a_superset(
    tmp_path: Path, crm_api: CrmApiServer
) -> None:
    seed_day1(crm_api)
    run(tmp_path, crm_api, DAY1, T1)
    seed_after_day1(crm_api)
    first = run(tmp_path, crm_api, DAY2, T2)
    first_ids = landed_ids(first)
    upsert(crm_api, [account(7, "2024-03-11T20:00:00Z")])

    again = run(tmp_path, crm_api, DAY2, T3)

    assert landed_ids(again) == first_ids | {"C007"}
    assert again.landed_at == T3
    assert again.source_positions["since"] == first.source_positions["since"]
    assert again.source_positions["watermark"] == "2024-03-11T20:00:00+00:00"


def test_an_earlier_day_with_a_later_load_is_returned_unchanged(
    tmp_path: Path, crm_api: CrmApiServer
) -> None:
    seed_day1(crm_api)
    day1 = run(tmp_path, crm_api, DAY1, T1)
    seed_after_day1(crm_api)
    run(tmp_path, crm_api, DAY2, T2)
    served = crm_api.requests_served

    again = run(tmp_path, crm_api, DAY1, T3)

    assert again == day1
    assert crm_api.requests_served == served  # nothing extracted


def test_a_day_without_a_load_before_the_latest_load_raises_config_error(
    tmp_path: Path, crm_api: CrmApiServer
) -> None:
    seed_day1(crm_api)
    run(tmp_path, crm_api, DAY1, T1)

    with pytest.raises(ConfigError, match=r"load_dt=2024-03-09.*later load.*2024-03-10"):
        run(tmp_path, crm_api, DAY0, T2)
    assert list_loads(raw_zone(StorageRoot(tmp_path)), "crm", "accounts") == [DAY1]


def test_an_empty_first_load_keeps_no_watermark_and_the_next_day_starts_at_initial(
    tmp_path: Path, crm_api: CrmApiServer
) -> None:
    empty = run(tmp_path, crm_api, DAY1, T1)
    assert empty.row_count == 0
    assert empty.source_positions["watermark"] is None
    upsert(crm_api, [account(1, "2001-06-01T00:00:00Z"), account(2, "2024-03-11T01:00:00Z")])

    day2 = run(tmp_path, crm_api, DAY2, T2)

    assert landed_ids(day2) == {"C001", "C002"}
    assert day2.source_positions["since"] == "2000-01-01T00:00:00+00:00"


def test_a_failed_fetch_lands_nothing_and_the_retry_lands_the_day(
    tmp_path: Path, crm_api_with_token: CrmApiServer
) -> None:
    seed_day1(crm_api_with_token)
    url = crm_api_with_token.url

    with pytest.raises(SourceResponseError):
        extract_crm_accounts_to_raw(StorageRoot(tmp_path), url, DAY1, token="wrong", now=T1)
    assert list_loads(raw_zone(StorageRoot(tmp_path)), "crm", "accounts") == []

    manifest = extract_crm_accounts_to_raw(StorageRoot(tmp_path), url, DAY1, token=TOKEN, now=T1)
    assert landed_ids(manifest) == {"C001", "C002", "C003"}
    assert TOKEN not in (manifest.load_dir / "_manifest.json").read_text(encoding="utf-8")


def test_naive_now_is_refused(tmp_path: Path, crm_api: CrmApiServer) -> None:
    with pytest.raises(ConfigError, match="now="):
        run(tmp_path, crm_api, DAY1, datetime(2024, 3, 12))


def _manifest(root: Path, load_dt: date) -> LoadManifest:
    raw = raw_zone(StorageRoot(root))
    return read_manifest(raw / "crm" / "accounts" / f"load_dt={load_dt.isoformat()}")
