"""JSON over HTTP with retries: what every REST source client shares.

Transport errors, 5xx and 429 are retried with exponential backoff and jitter, waiting at least
what a ``Retry-After`` header asks for; any other 4xx fails at once (it will not succeed on retry).
After the last attempt, ``SourceUnavailable`` names the source, the endpoint and the last error.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
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

from medallion.lakehouse.errors import (
    ConfigError,
    MedallionError,
    SourceResponseError,
    SourceUnavailable,
)


class RetryableResponseError(MedallionError):
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


def backoff(
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
        if isinstance(error, RetryableResponseError) and error.retry_after is not None:
            seconds = max(seconds, error.retry_after)
        return min(seconds, max_wait_seconds)

    return wait


def request_json_with_retries(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    source: str,
    attempts: int,
    initial_wait_seconds: float,
    max_wait_seconds: float,
    params: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
) -> Any:
    """Send one request (query ``params`` and/or a JSON ``body``) and parse its JSON answer."""
    if attempts < 1:
        raise ConfigError(f"attempts={attempts}: expected at least 1")
    endpoint = f"{method} {url}" if method != "GET" else str(httpx.URL(url, params=params))

    def attempt() -> Any:
        response = client.request(method, url, params=params, json=body)
        if response.status_code == 429 or response.is_server_error:
            raise RetryableResponseError(response)
        if response.is_error:
            raise SourceResponseError(
                f"source {source!r} refused {method} {response.request.url} with HTTP "
                f"{response.status_code}: {response.text[:500]} (not retried: a 4xx other than "
                "429 will not succeed on retry)"
            )
        try:
            return response.json()
        except ValueError as error:
            raise SourceResponseError(
                f"source {source!r} answered {method} {response.request.url} with a body that "
                f"is not JSON: {response.text[:200]!r}"
            ) from error

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=backoff(initial_wait_seconds, max_wait_seconds),
        retry=retry_if_exception_type((httpx.TransportError, RetryableResponseError)),
    )
    try:
        return retrying(attempt)
    except RetryError as error:
        last = error.last_attempt.exception()
        raise SourceUnavailable(
            f"source {source!r} unavailable at {endpoint} after {attempts} attempts; "
            f"last error: {type(last).__name__}: {last}"
        ) from last
