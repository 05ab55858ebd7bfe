"""The CRM (HubSpot-style) client: accounts modified in a window, every page, exactly as received.

The extractor pulls incrementally by ``last_modified_date``: ``next_window`` re-reads a lookback
before the watermark so late updates (records whose ``last_modified_date`` lands in the past) are
caught, and ``new_watermark`` advances the watermark without ever moving it back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, overload

import httpx

from medallion.lakehouse.errors import ConfigError, RawLoadError, SourceResponseError
from medallion.lakehouse.raw.landing import (
    MANIFEST_NAME,
    LoadManifest,
    land_records,
    list_loads,
    load_dir,
    peek_manifest,
    raw_zone,
)
from medallion.lakehouse.sources.http import request_json_with_retries
from medallion.lakehouse.storage import StorageRoot

log = logging.getLogger(__name__)

SOURCE = "crm"
ACCOUNTS_ENTITY = "accounts"
SEARCH_PATH = "/crm/v3/objects/contacts/search"
MAX_PAGE_SIZE = 100
# DESIGN.md §3 column -> HubSpot property name.
ACCOUNT_PROPERTIES: dict[str, str] = {
    "customer_id": "customer_id",
    "name": "name",
    "email": "email",
    "phone": "phone",
    "country": "country",
    "lifecycle_stage": "lifecycle_stage",
    "last_modified_date": "lastmodifieddate",
}
ACCOUNT_COLUMNS: tuple[str, ...] = tuple(ACCOUNT_PROPERTIES)


def _epoch_millis(instant: datetime) -> str:
    """``instant`` as the epoch-milliseconds string HubSpot date filters take."""
    return str(int(instant.timestamp() * 1000))


def search_body(
    since: datetime, until: datetime, page_size: int, after: str | None
) -> dict[str, Any]:
    """The search body of one page: since <= lastmodifieddate < until, oldest first."""
    body: dict[str, Any] = {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": "lastmodifieddate",
                        "operator": "GTE",
                        "value": _epoch_millis(since),
                    },
                    {
                        "propertyName": "lastmodifieddate",
                        "operator": "LT",
                        "value": _epoch_millis(until),
                    },
                ]
            }
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": list(ACCOUNT_PROPERTIES.values()),
        "limit": page_size,
    }
    if after is not None:
        body["after"] = after
    return body


def _page_results(page: Any, endpoint: str) -> tuple[list[dict[str, Any]], str | None]:
    """(flattened records, next cursor or None) of one search answer; wrong shapes raise."""
    results = page.get("results") if isinstance(page, dict) else None
    if not isinstance(results, list) or not all(
        isinstance(result, dict) and isinstance(result.get("properties"), dict)
        for result in results
    ):
        raise SourceResponseError(
            f"source {SOURCE!r} at {endpoint}: expected a JSON object with a 'results' list of "
            f"objects with 'properties', found {str(page)[:200]!r}"
        )
    paging = page.get("paging")
    following = paging.get("next") if isinstance(paging, dict) else None
    after = following.get("after") if isinstance(following, dict) else None
    if paging is not None and not isinstance(after, str):
        raise SourceResponseError(
            f"source {SOURCE!r} at {endpoint}: expected paging.next.after to be a string, "
            f"found paging={str(paging)[:200]!r}"
        )
    records = [
        {column: result["properties"].get(name) for column, name in ACCOUNT_PROPERTIES.items()}
        for result in results
    ]
    return records, after


def fetch_accounts_modified(
    base_url: str,
    since: datetime,
    until: datetime,
    *,
    token: str | None,
    page_size: int = MAX_PAGE_SIZE,
    attempts: int = 5,
    initial_wait_seconds: float = 0.5,
    max_wait_seconds: float = 30.0,
    timeout_seconds: float = 10.0,
) -> list[dict[str, Any]]:
    """Every account with since <= last_modified_date < until, oldest first, values as received.

    Grain: one dict per CRM record, keyed by the DESIGN.md §3 columns (customer_id, name, email,
    phone, country, lifecycle_stage, last_modified_date). Follows ``paging.next.after`` to the last
    page; each page is retried on connect errors, timeouts, 5xx and 429 (honouring Retry-After)
    with exponential backoff and jitter. Raises ``SourceUnavailable`` after the last attempt and
    ``SourceResponseError`` at once on any other 4xx (401 included) or a body of the wrong shape.
    The token travels only in the Authorization header: no message or log line carries it.
    """
    for label, instant in (("since", since), ("until", until)):
        if instant.tzinfo is None:
            raise ConfigError(f"{label}={instant.isoformat()}: expected a timezone-aware datetime")
    if since > until:
        raise ConfigError(
            f"window {since.isoformat()} .. {until.isoformat()}: since is after until"
        )
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ConfigError(f"page_size={page_size}: expected 1 to {MAX_PAGE_SIZE}")

    url = base_url.rstrip("/") + SEARCH_PATH
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    records: list[dict[str, Any]] = []
    after: str | None = None
    seen_cursors: set[str] = set()
    with httpx.Client(timeout=timeout_seconds, headers=headers) as client:
        while True:
            page = request_json_with_retries(
                client,
                "POST",
                url,
                body=search_body(since, until, page_size, after),
                source=SOURCE,
                attempts=attempts,
                initial_wait_seconds=initial_wait_seconds,
                max_wait_seconds=max_wait_seconds,
            )
            page_records, after = _page_results(page, url)
            records.extend(page_records)
            log.debug(
                "crm page of %d records from %s, next after=%s", len(page_records), url, after
            )
            if after is None:
                return records
            if after in seen_cursors:
                raise SourceResponseError(
                    f"source {SOURCE!r} at {url}: paging.next.after={after!r} repeats an earlier "
                    "cursor; stopping rather than looping forever"
                )
            seen_cursors.add(after)


def next_window(
    watermark: datetime | None, now: datetime, lookback: timedelta, initial: datetime
) -> tuple[datetime, datetime]:
    """The (since, until) to extract next: from ``lookback`` before the watermark, >= initial."""
    if lookback < timedelta(0):
        raise ConfigError(f"lookback={lookback}: expected a non-negative duration")
    since = initial if watermark is None else max(watermark - lookback, initial)
    return since, now


def parse_last_modified(record: Mapping[str, Any]) -> datetime:
    """A record's ``last_modified_date`` as an aware datetime (naive values are UTC)."""
    value = record.get("last_modified_date")
    try:
        instant = datetime.fromisoformat(str(value))
    except ValueError as error:
        raise SourceResponseError(
            f"source {SOURCE!r} record customer_id={record.get('customer_id')!r}: "
            f"last_modified_date {value!r} is not an ISO-8601 datetime"
        ) from error
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


@overload
def new_watermark(records: Iterable[Mapping[str, Any]], previous: datetime) -> datetime: ...


@overload
def new_watermark(records: Iterable[Mapping[str, Any]], previous: None) -> datetime | None: ...


def new_watermark(
    records: Iterable[Mapping[str, Any]], previous: datetime | None
) -> datetime | None:
    """The latest last_modified_date seen, or ``previous`` if none is later: it never moves back."""
    latest = previous
    for record in records:
        modified = parse_last_modified(record)
        if latest is None or modified > latest:
            latest = modified
    return latest


def extract_crm_accounts_to_raw(
    storage_root: StorageRoot,
    base_url: str,
    run_date: date,
    *,
    token: str | None = None,
    lookback: timedelta = timedelta(days=3),
    initial: datetime = datetime(2000, 1, 1, tzinfo=UTC),
    now: datetime | None = None,
    initial_wait_seconds: float = 0.5,
) -> LoadManifest:
    """Land the accounts modified up to the end of ``run_date`` as ``raw/crm/accounts/load_dt=``.

    No state file: the position is the landed manifests' ``source_positions`` (``since``,
    ``until``, ``watermark``), written atomically with the load, so a crash anywhere leaves
    either the previous position or the new one, never a half-saved one. The window is
    ``next_window(watermark, until, lookback, initial)``, ``until`` being 00:00 UTC of the day
    after ``run_date`` and ``watermark`` that of the latest load strictly before ``run_date``:

    - ``run_date`` is already the latest load: re-extracted from that load's own ``since``, so a
      rerun lands the same records (a no-op: ``land_records`` keeps the manifest and its
      ``landed_at``) or a superset, never a narrower day;
    - a later load exists: the existing manifest of ``run_date`` is returned unchanged, nothing is
      extracted; if ``run_date`` has no load, ``ConfigError`` (a backfill before the latest load
      would overlap the later loads' windows);
    - otherwise: a new load from ``watermark - lookback``.

    Limit: a late update whose ``last_modified_date`` is more than ``lookback`` before the
    watermark is never extracted (its timestamp is before every later window); widen
    ``lookback`` or re-extract from ``initial`` to recover such records.

    Grain: one record per account per load, as ``fetch_accounts_modified`` returns it; records
    in the lookback overlap appear again in the next load (downstream dedups on customer_id and
    last_modified_date). ``now`` is the ``landed_at`` of a new or changed load;
    ``initial_wait_seconds`` the first wait of each page's retries (``fetch_accounts_modified``).
    """
    for label, instant in (("initial", initial), ("now", now)):
        if instant is not None and instant.tzinfo is None:
            raise ConfigError(f"{label}={instant.isoformat()}: expected a timezone-aware datetime")
    raw_root = raw_zone(storage_root)
    loads = list_loads(raw_root, SOURCE, ACCOUNTS_ENTITY)
    if loads and loads[-1] > run_date:
        if run_date in loads:
            return _accounts_manifest(raw_root, run_date)
        raise ConfigError(
            f"crm accounts load_dt={run_date.isoformat()}: no load of that day, and a later load "
            f"(load_dt={loads[-1].isoformat()}) exists; landing an earlier day now would overlap "
            "the later loads' windows"
        )
    earlier = [load_dt for load_dt in loads if load_dt < run_date]
    previous = (
        _position(_accounts_manifest(raw_root, earlier[-1]), "watermark") if earlier else None
    )
    until = datetime.combine(run_date + timedelta(days=1), time(), tzinfo=UTC)
    since, until = next_window(previous, until, lookback, initial)
    if run_date in loads:
        recorded = _position(_accounts_manifest(raw_root, run_date), "since")
        if recorded is not None:
            since = recorded
    records = fetch_accounts_modified(
        base_url, since, until, token=token, initial_wait_seconds=initial_wait_seconds
    )
    watermark = new_watermark(records, previous)
    manifest = land_records(
        raw_root,
        SOURCE,
        ACCOUNTS_ENTITY,
        run_date,
        records,
        source_positions={
            "since": since.isoformat(),
            "until": until.isoformat(),
            "watermark": None if watermark is None else watermark.isoformat(),
        },
        expected_columns=ACCOUNT_COLUMNS,
        anomalies={"null_key:customer_id": sum(1 for r in records if r["customer_id"] is None)},
        now=now,
    )
    log.info(
        "crm accounts: %d records landed for %s, window %s .. %s, watermark %s -> %s",
        manifest.row_count,
        run_date,
        since.isoformat(),
        until.isoformat(),
        previous,
        watermark,
    )
    return manifest


def _accounts_manifest(raw_root: Path, load_dt: date) -> LoadManifest:
    """A complete accounts load's manifest, without re-hashing its data files."""
    return peek_manifest(load_dir(raw_root, SOURCE, ACCOUNTS_ENTITY, load_dt))


def _position(manifest: LoadManifest, name: str) -> datetime | None:
    """``source_positions[name]`` of a load as an aware datetime (None when unset)."""
    value = manifest.source_positions.get(name)
    if value is None:
        return None
    try:
        instant = datetime.fromisoformat(str(value))
    except ValueError as error:
        raise RawLoadError(
            f"{manifest.load_dir / MANIFEST_NAME}: source_positions.{name} {value!r} is not an "
            "ISO-8601 datetime"
        ) from error
    if instant.tzinfo is None:
        raise RawLoadError(
            f"{manifest.load_dir / MANIFEST_NAME}: source_positions.{name} {value!r} has no "
            "timezone"
        )
    return instant
