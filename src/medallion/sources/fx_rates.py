"""The FX-rates REST API client: one day's rates, with retries, exactly as received."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from medallion.errors import ConfigError, MedallionError, SourceResponseError, SourceUnavailable

SOURCE = "fx_rates"
RATES_PATH = "/v1/rates"


class _RetryableResponseError(MedallionError):
    """A 5xx or 429 answer: worth another attempt, after ``retry_after`` seconds if given."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        super().__init__(f"HTTP {response.status_code}: {response.text[:200]}")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), else None."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _backoff(
    initial_wait_seconds: float, max_wait_seconds: float
) -> Callable[[RetryCallState], float]:
    """Exponential backoff with jitter, at least what a 429/503's Retry-After asks for.

    ``max_wait_seconds`` caps every single wait, a server's Retry-After included.
    """
    exponential = wait_exponential_jitter(
        multiplier=initial_wait_seconds, max=max_wait_seconds, jitter=initial_wait_seconds
    )

    def wait(retry_state: RetryCallState) -> float:
        seconds = float(exponential(retry_state))
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _RetryableResponseError) and error.retry_after is not None:
            seconds = max(seconds, error.retry_after)
        return min(seconds, max_wait_seconds)

    return wait


def get_json_with_retries(
    client: httpx.Client,
    url: str,
    params: dict[str, str],
    *,
    source: str,
    attempts: int,
    initial_wait_seconds: float,
    max_wait_seconds: float,
) -> Any:
    """GET ``url`` and parse its JSON body, retrying transport errors, 5xx and 429."""
    if attempts < 1:
        raise ConfigError(f"attempts={attempts}: expected at least 1")

    def attempt() -> Any:
        response = client.get(url, params=params)
        if response.status_code == 429 or response.is_server_error:
            raise _RetryableResponseError(response)
        if response.is_error:
            raise SourceResponseError(
                f"source {source!r} refused GET {response.request.url} with HTTP "
                f"{response.status_code}: {response.text[:500]} (not retried: a 4xx other than "
                "429 will not succeed on retry)"
            )
        try:
            return response.json()
        except ValueError as error:
            raise SourceResponseError(
                f"source {source!r} answered GET {response.request.url} with a body that is not "
                f"JSON: {response.text[:200]!r}"
            ) from error

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=_backoff(initial_wait_seconds, max_wait_seconds),
        retry=retry_if_exception_type((httpx.TransportError, _RetryableResponseError)),
    )
    try:
        return retrying(attempt)
    except RetryError as error:
        last = error.last_attempt.exception()
        endpoint = httpx.URL(url, params=params)
        raise SourceUnavailable(
            f"source {source!r} unavailable at {endpoint} after {attempts} attempts; "
            f"last error: {type(last).__name__}: {last}"
        ) from last


def fetch_fx_rates(
    base_url: str,
    rate_date: date,
    base: str = "USD",
    *,
    attempts: int = 5,
    initial_wait_seconds: float = 0.5,
    max_wait_seconds: float = 30.0,
    timeout_seconds: float = 10.0,
) -> list[dict[str, Any]]:
    """One dict per currency (date, base, currency, rate) for ``rate_date``, values as received.

    Retries connect errors, timeouts, 5xx and 429 (honouring Retry-After) with exponential backoff
    and jitter; raises ``SourceUnavailable`` after the last attempt and ``SourceResponseError`` at
    once on any other 4xx or on a body that is not ``{"date", "base", "rates": {...}}``.
    """
    url = base_url.rstrip("/") + RATES_PATH
    params = {"date": rate_date.isoformat(), "base": base}
    with httpx.Client(timeout=timeout_seconds) as client:
        payload = get_json_with_retries(
            client,
            url,
            params,
            source=SOURCE,
            attempts=attempts,
            initial_wait_seconds=initial_wait_seconds,
            max_wait_seconds=max_wait_seconds,
        )
    rates = payload.get("rates") if isinstance(payload, dict) else None
    if not isinstance(rates, dict) or "date" not in payload or "base" not in payload:
        raise SourceResponseError(
            f"source {SOURCE!r} at {httpx.URL(url, params=params)}: expected a JSON object with "
            f"'date', 'base' and a 'rates' object, found {str(payload)[:200]!r}"
        )
    return [
        {"date": payload["date"], "base": payload["base"], "currency": currency, "rate": rate}
        for currency, rate in rates.items()
    ]
