"""The FX API client: records as received, retries with backoff, named failures."""

from __future__ import annotations

import socket
import time
from datetime import UTC, date, datetime

import httpx
import pytest

from medallion.lakehouse.errors import SourceResponseError, SourceUnavailable
from medallion.lakehouse.sources.fx_rates import fetch_fx_rates, parse_retry_after
from medallion.platform.devstack.fx_api import FxApiServer

RATE_DATE = date(2026, 11, 2)
INITIAL_WAIT, MAX_WAIT = 0.001, 0.01  # seconds: keep retry tests fast


def inject_faults(server: FxApiServer, **faults: object) -> None:
    httpx.post(f"{server.url}/admin/faults", json=faults).raise_for_status()


def test_records_are_one_per_currency_exactly_as_received(fx_api: FxApiServer) -> None:
    payload = httpx.get(
        f"{fx_api.url}/v1/rates", params={"date": "2026-11-02", "base": "USD"}
    ).json()

    records = fetch_fx_rates(fx_api.url, RATE_DATE)

    assert records == [
        {"date": "2026-11-02", "base": "USD", "currency": currency, "rate": rate}
        for currency, rate in payload["rates"].items()
    ]


def test_retries_503_then_succeeds(fx_api: FxApiServer) -> None:
    inject_faults(fx_api, fail_next=2, status=503)

    records = fetch_fx_rates(
        fx_api.url,
        RATE_DATE,
        attempts=3,
        initial_wait_seconds=INITIAL_WAIT,
        max_wait_seconds=MAX_WAIT,
    )

    assert len(records) == 10
    assert fx_api.requests_served == 3


def test_honours_retry_after_on_429(fx_api: FxApiServer) -> None:
    inject_faults(fx_api, fail_next=1, status=429, retry_after=0.3)

    started = time.monotonic()
    records = fetch_fx_rates(
        fx_api.url, RATE_DATE, attempts=2, initial_wait_seconds=0.001, max_wait_seconds=5
    )

    assert len(records) == 10
    assert fx_api.requests_served == 2
    assert time.monotonic() - started >= 0.3


def test_gives_up_after_the_last_attempt_on_persistent_503(fx_api: FxApiServer) -> None:
    inject_faults(fx_api, fail_next=10, status=503)

    with pytest.raises(SourceUnavailable, match=r"after 3 attempts; last error: .*HTTP 503"):
        fetch_fx_rates(
            fx_api.url,
            RATE_DATE,
            attempts=3,
            initial_wait_seconds=INITIAL_WAIT,
            max_wait_seconds=MAX_WAIT,
        )
    assert fx_api.requests_served == 3


def test_names_source_endpoint_and_last_error_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    with pytest.raises(SourceUnavailable) as raised:
        fetch_fx_rates(
            url, RATE_DATE, attempts=3, initial_wait_seconds=INITIAL_WAIT, max_wait_seconds=MAX_WAIT
        )

    assert str(raised.value).startswith(
        f"source 'fx_rates' unavailable at {url}/v1/rates?date=2026-11-02&base=USD "
        "after 3 attempts; last error: ConnectError:"
    )


def test_a_400_fails_at_once_without_retrying(fx_api: FxApiServer) -> None:
    with pytest.raises(SourceResponseError, match=r"HTTP 400: .*unknown base 'XXX'"):
        fetch_fx_rates(
            fx_api.url,
            RATE_DATE,
            base="XXX",
            attempts=5,
            initial_wait_seconds=INITIAL_WAIT,
            max_wait_seconds=MAX_WAIT,
        )
    assert fx_api.requests_served == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        ("0.25", 0.25),
        ("Thu, 26 Nov 2026 12:00:05 GMT", 5.0),
        ("soon", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after(header, now=now) == seconds
