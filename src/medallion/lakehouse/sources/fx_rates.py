"""The FX-rates REST API client: one day's rates, with retries, exactly as received."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from medallion.lakehouse.errors import SourceResponseError
from medallion.lakehouse.sources.http import parse_retry_after, request_json_with_retries

__all__ = ["RATES_PATH", "SOURCE", "fetch_fx_rates", "parse_retry_after"]

SOURCE = "fx_rates"
RATES_PATH = "/v1/rates"


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
        payload = request_json_with_retries(
            client,
            "GET",
            url,
            params=params,
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
