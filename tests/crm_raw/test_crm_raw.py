"""``extract_crm_accounts_to_raw``: windows from landed manifests, lookback, reruns, limits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from medallion.devstack.crm_api import CrmApiServer
from medallion.errors import ConfigError, SourceResponseError
from medallion.raw.landing import list_loads, raw_zone, read_manifest
from medallion.sources.crm import extract_crm_accounts_to_raw

from .conftest import TOKEN, account, landed, landed_ids, upsert

DAY1, DAY2 = date(2024, 3, 10), date(2024, 3, 11)
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
            # Late update inside the lookback (since = 2024-03-07T12:00).
            account(2, "2024-03-08T00:00:00Z", email="late@example.com"),
            # Late record older than the lookback: never extracted (documented limit).
            account(6, "2024-03-06T00:00:00Z"),
        ],
    )


def run(root: Path, server: CrmApiServer, run_date: date, now: datetime, **kwargs: object):  # type: ignore[no-untyped-def]
    return extract_crm_accounts_to_raw(
        root, server.url, run_date, lookback=LOOKBACK, now=now, **kwargs  # type: ignore[arg-type]
    )
