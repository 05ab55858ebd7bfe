"""The CRM client: every page once, windows, late updates, retries, named failures, no leaks."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from medallion.lakehouse.errors import ConfigError, SourceResponseError, SourceUnavailable
from medallion.lakehouse.sources.crm import (
    ACCOUNT_COLUMNS,
    SEARCH_PATH,
    fetch_accounts_modified,
    new_watermark,
    next_window,
)
from medallion.platform.devstack.crm_api import CrmApiServer
from tests.lakehouse.sources.crm.conftest import TOKEN, account, load_accounts

INITIAL = datetime(2026, 11, 1, tzinfo=UTC)
DAY_2, DAY_3 = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
INITIAL_WAIT, MAX_WAIT = 0.001, 0.01  # seconds: keep retry tests fast


def received(record: dict[str, Any]) -> dict[str, Any]:
    """What the client returns for an admin record loaded with a ``...Z`` whole-second date."""
    return {**record, "last_modified_date": record["last_modified_date"][:-1] + ".000Z"}


def hourly_accounts(count: int, start: datetime = DAY_2) -> list[dict[str, Any]]:
    """``count`` accounts modified an hour apart from ``start``, loaded newest first."""
    stamps = [(start + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ") for n in range(count)]
    return [account(n + 1, stamps[n]) for n in reversed(range(count))]


def inject_faults(server: CrmApiServer, **faults: object) -> None:
    httpx.post(f"{server.url}/admin/faults", json=faults).raise_for_status()


def test_follows_every_page_returning_each_record_once_in_order(crm_api: CrmApiServer) -> None:
    accounts = hourly_accounts(7)
    load_accounts(crm_api, accounts)

    records = fetch_accounts_modified(crm_api.url, INITIAL, DAY_3, token=None, page_size=3)

    assert records == [received(a) for a in reversed(accounts)]
    assert list(records[0]) == list(ACCOUNT_COLUMNS)
    assert crm_api.requests_served == 3


def test_returns_since_inclusive_until_exclusive(crm_api: CrmApiServer) -> None:
    load_accounts(crm_api, hourly_accounts(5))  # 00:00 .. 04:00 on DAY_2

    records = fetch_accounts_modified(
        crm_api.url, DAY_2 + timedelta(hours=1), DAY_2 + timedelta(hours=3), token=None
    )

    assert [r["customer_id"] for r in records] == ["C002", "C003"]


def test_values_come_back_as_received_without_coercion(crm_api: CrmApiServer) -> None:
    dirty = account(1, "2026-11-02T06:00:00Z", phone=5550001, country=None, extra="dropped")
    load_accounts(crm_api, [dirty])

    (record,) = fetch_accounts_modified(crm_api.url, INITIAL, DAY_3, token=None)

    assert record == {
        "customer_id": "C001",
        "name": "Customer 1",
        "email": "customer1@example.com",
        "phone": 5550001,
        "country": None,
        "lifecycle_stage": "customer",
        "last_modified_date": "2026-11-02T06:00:00.000Z",
    }


def test_a_late_update_is_caught_by_the_lookback_and_missed_without(
    crm_api: CrmApiServer,
) -> None:
    load_accounts(crm_api, hourly_accounts(4))  # C001..C004 at 00:00 .. 03:00 on DAY_2
    first_since, first_until = next_window(None, DAY_2 + timedelta(hours=6), timedelta(0), INITIAL)
    first = fetch_accounts_modified(crm_api.url, first_since, first_until, token=None)
    watermark = new_watermark(first, None)
    late = account(2, "2026-11-02T02:30:00Z", lifecycle_stage="churned")
    load_accounts(crm_api, [late])  # arrives after the run, dated before its watermark
    now = DAY_2 + timedelta(hours=12)

    without = fetch_accounts_modified(
        crm_api.url, *next_window(watermark, now, timedelta(0), INITIAL), token=None
    )
    with_lookback = fetch_accounts_modified(
        crm_api.url, *next_window(watermark, now, timedelta(hours=1), INITIAL), token=None
    )

    assert [r["customer_id"] for r in first] == ["C001", "C002", "C003", "C004"]
    assert watermark == DAY_2 + timedelta(hours=3)
    assert [r["customer_id"] for r in without] == ["C004"]
    assert with_lookback == [  # the lookback re-reads C003 too: silver keeps the latest state
        received(account(3, "2026-11-02T02:00:00Z")),
        {**late, "last_modified_date": "2026-11-02T02:30:00.000Z"},
        received(account(4, "2026-11-02T03:00:00Z")),
    ]
    assert new_watermark(with_lookback, watermark) == watermark


def test_honours_retry_after_on_429_then_succeeds(crm_api: CrmApiServer) -> None:
    load_accounts(crm_api, hourly_accounts(2))
    inject_faults(crm_api, fail_next=1, status=429, retry_after=0.3)

    started = time.monotonic()
    records = fetch_accounts_modified(
        crm_api.url, INITIAL, DAY_3, token=None, attempts=2, initial_wait_seconds=0.001
    )

    assert [r["customer_id"] for r in records] == ["C001", "C002"]
    assert crm_api.requests_served == 2
    assert time.monotonic() - started >= 0.3


def test_retries_503_then_succeeds(crm_api: CrmApiServer) -> None:
    load_accounts(crm_api, hourly_accounts(3))
    inject_faults(crm_api, fail_next=2, status=503)

    records = fetch_accounts_modified(
        crm_api.url,
        INITIAL,
        DAY_3,
        token=None,
        attempts=3,
        initial_wait_seconds=INITIAL_WAIT,
        max_wait_seconds=MAX_WAIT,
    )

    assert [r["customer_id"] for r in records] == ["C001", "C002", "C003"]
    assert crm_api.requests_served == 3


def test_pages_through_the_rate_limit_of_a_real_bucket() -> None:
    with CrmApiServer(rate_per_second=20, burst=1) as server:
        load_accounts(server, hourly_accounts(5))

        records = fetch_accounts_modified(
            server.url,
            INITIAL,
            DAY_3,
            token=None,
            page_size=1,
            attempts=3,
            initial_wait_seconds=INITIAL_WAIT,
            max_wait_seconds=1.0,  # let the bucket's Retry-After (~0.05 s) be honoured
        )
        served = server.requests_served

    assert [r["customer_id"] for r in records] == ["C001", "C002", "C003", "C004", "C005"]
    assert served > 5  # back-to-back pages outrun the bucket: some were refused with 429


def test_gives_up_naming_source_endpoint_and_last_error_without_the_token() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    with pytest.raises(SourceUnavailable) as raised:
        fetch_accounts_modified(
            url,
            INITIAL,
            DAY_3,
            token=TOKEN,
            attempts=3,
            initial_wait_seconds=INITIAL_WAIT,
            max_wait_seconds=MAX_WAIT,
        )

    message = str(raised.value)
    assert message.startswith(
        f"source 'crm' unavailable at POST {url}{SEARCH_PATH} after 3 attempts; "
        "last error: ConnectError:"
    )
    assert TOKEN not in message
    assert TOKEN not in repr(raised.value.__cause__)


def test_a_401_fails_at_once_without_the_token_in_the_message(
    crm_api_with_token: CrmApiServer,
) -> None:
    with pytest.raises(SourceResponseError, match="with HTTP 401") as raised:
        fetch_accounts_modified(crm_api_with_token.url, INITIAL, DAY_3, token=f"old-{TOKEN}")

    assert crm_api_with_token.requests_served == 1
    assert TOKEN not in str(raised.value)


def test_the_token_opens_the_api_and_never_reaches_the_logs(
    crm_api_with_token: CrmApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    load_accounts(crm_api_with_token, hourly_accounts(3))
    inject_faults(crm_api_with_token, fail_next=1, status=503)
    caplog.set_level(logging.DEBUG)

    records = fetch_accounts_modified(
        crm_api_with_token.url,
        INITIAL,
        DAY_3,
        token=TOKEN,
        page_size=2,
        attempts=2,
        initial_wait_seconds=INITIAL_WAIT,
        max_wait_seconds=MAX_WAIT,
    )

    assert [r["customer_id"] for r in records] == ["C001", "C002", "C003"]
    assert "crm page of 2 records" in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"page_size": 101}, "page_size=101: expected 1 to 100"),
        ({"since": datetime(2026, 11, 1)}, "since=2026-11-01T00:00:00: expected a timezone-aware"),
        ({"since": DAY_3, "until": DAY_2}, "since is after until"),
        ({"attempts": 0}, "attempts=0: expected at least 1"),
    ],
)
def test_rejects_bad_arguments_before_any_request(
    crm_api: CrmApiServer, options: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"since": INITIAL, "until": DAY_3, "token": None, **options}

    with pytest.raises(ConfigError, match=message):
        fetch_accounts_modified(crm_api.url, **arguments)

    assert crm_api.requests_served == 0


@pytest.mark.parametrize(
    ("watermark", "lookback", "since"),
    [
        (None, timedelta(hours=2), INITIAL),
        (DAY_2, timedelta(0), DAY_2),
        (DAY_2, timedelta(hours=2), DAY_2 - timedelta(hours=2)),
        (INITIAL + timedelta(hours=1), timedelta(hours=2), INITIAL),
    ],
)
def test_next_window(watermark: datetime | None, lookback: timedelta, since: datetime) -> None:
    assert next_window(watermark, DAY_3, lookback, INITIAL) == (since, DAY_3)


def test_next_window_rejects_a_negative_lookback() -> None:
    with pytest.raises(ConfigError, match="expected a non-negative duration"):
        next_window(DAY_2, DAY_3, timedelta(hours=-1), INITIAL)


def test_new_watermark_is_the_latest_date_seen_and_never_moves_back() -> None:
    records = [
        {"customer_id": "C001", "last_modified_date": "2026-11-02T06:00:00.000Z"},
        {"customer_id": "C002", "last_modified_date": "2026-11-02T08:30:00.000Z"},
    ]

    assert new_watermark(records, None) == datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    assert new_watermark(records, DAY_3) == DAY_3
    assert new_watermark([], DAY_2) == DAY_2
    assert new_watermark([], None) is None


def test_new_watermark_names_a_record_with_a_bad_date() -> None:
    with pytest.raises(SourceResponseError, match="customer_id='C009': last_modified_date 'soon'"):
        new_watermark([{"customer_id": "C009", "last_modified_date": "soon"}], None)
