"""A local stand-in of the FX-rates REST API.

``GET /v1/rates?date=YYYY-MM-DD&base=USD`` answers
``{"date": ..., "base": ..., "rates": {"EUR": 0.9213, ...}}`` for a fixed set of currencies.
Rates are deterministic in (seed, date): realistic base levels with a hash-based jitter of up to
±2 %, rounded to 6 decimals; other bases are cross rates of the USD ones. ``GET /health`` is 200.

Test controls: ``POST /admin/rates`` ``{"date", "currency", "rate"}`` corrects the USD rate of a
past date; ``POST /admin/faults`` ``{"fail_next": N, "status": 503}`` (or ``429`` with an
optional ``"retry_after"`` in seconds) makes the next N ``/v1`` requests fail. ``/health`` and
``/admin`` are never faulted, so the stand-in stays controllable while its API is "down".

Run it in the foreground with
``python -m medallion.platform.devstack.fx_api --port 0 --seed 42 --state-file PATH``: once
listening it writes ``{"url": ..., "pid": ...}`` to PATH.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from medallion.platform.devstack.serving import (
    BackgroundServer,
    BadRequestError,
    FaultInjection,
    json_response,
    read_json_body,
    serve_in_foreground,
    stand_in_app,
    stand_in_arguments,
)

# Units of each currency per 1 USD: realistic levels the daily jitter moves around.
BASE_LEVELS: dict[str, float] = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 151.5,
    "CAD": 1.37,
    "AUD": 1.53,
    "CHF": 0.88,
    "INR": 83.3,
    "BRL": 5.05,
    "MXN": 17.2,
}
CURRENCIES: tuple[str, ...] = tuple(BASE_LEVELS)
MAX_JITTER = 0.02
RATE_DECIMALS = 6


def synthetic_usd_rate(seed: int, rate_date: date, currency: str) -> float:
    """The stand-in's USD rate of ``currency`` on ``rate_date``: same inputs, same rate."""
    if currency == "USD":
        return 1.0
    digest = hashlib.sha256(f"{seed}:{rate_date.isoformat()}:{currency}".encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return round(BASE_LEVELS[currency] * (1 + MAX_JITTER * (2 * unit - 1)), RATE_DECIMALS)


@dataclass
class FxApiState(FaultInjection):
    """What the stand-in knows: its seed, corrected rates and pending faults (thread-safe)."""

    seed: int
    overrides: dict[tuple[date, str], float] = field(default_factory=dict)

    def usd_rates(self, rate_date: date) -> dict[str, float]:
        """Every currency's USD rate on ``rate_date``, corrections applied."""
        with self.lock:
            return {
                currency: self.overrides.get(
                    (rate_date, currency), synthetic_usd_rate(self.seed, rate_date, currency)
                )
                for currency in CURRENCIES
            }


def fx_api_app(state: FxApiState) -> Starlette:
    """The FX API over ``state``: ``/health``, ``/v1/rates`` and the test controls."""

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def rates(request: Request) -> Response:
        faulted = _injected_fault(state)
        if faulted is not None:
            return faulted
        return json_response(_rates(state, parse_qs(request.url.query)))

    async def override_rate(request: Request) -> Response:
        return json_response(_override_rate(state, await _read_json_object(request)))

    async def set_faults(request: Request) -> Response:
        return json_response(state.set_faults(await _read_json_object(request)))

    routes = [
        Route("/health", health),
        Route("/v1/rates", rates),
        Route("/admin/rates", override_rate, methods=["POST"]),
        Route("/admin/faults", set_faults, methods=["POST"]),
    ]
    return stand_in_app(routes, _not_found, _bad_request)


def _not_found(request: Request, error: Exception) -> Response:
    """404 with ``{"error"}`` naming the path."""
    return json_response({"error": f"no such resource: {request.url.path}"}, HTTPStatus.NOT_FOUND)


def _bad_request(request: Request, error: Exception) -> Response:
    """400 with ``{"error"}`` saying what was wrong."""
    return json_response({"error": str(error)}, HTTPStatus.BAD_REQUEST)


def _injected_fault(state: FxApiState) -> Response | None:
    """Count the request, and answer the injected fault due, if any."""
    state.count_request()
    fault = state.take_fault()
    if fault is None:
        return None
    status, retry_after = fault
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    return json_response({"error": f"injected fault: {status}"}, status, headers)


def _rates(state: FxApiState, query: dict[str, list[str]]) -> dict[str, Any]:
    """The body of ``GET /v1/rates`` for the query's ``date`` and ``base``."""
    rate_date = _parse_date(query.get("date", [""])[0])
    base = query.get("base", ["USD"])[0]
    if base not in BASE_LEVELS:
        known = ", ".join(CURRENCIES)
        raise BadRequestError(f"unknown base {base!r}: expected one of {known}")
    usd_rates = state.usd_rates(rate_date)
    rates = {
        currency: round(usd_rate / usd_rates[base], RATE_DECIMALS)
        for currency, usd_rate in usd_rates.items()
    }
    return {"date": rate_date.isoformat(), "base": base, "rates": rates}


def _override_rate(state: FxApiState, body: dict[str, Any]) -> dict[str, Any]:
    """Apply one ``POST /admin/rates`` correction; returns what now applies."""
    rate_date = _parse_date(str(body.get("date", "")))
    currency = body.get("currency")
    rate = body.get("rate")
    if currency not in BASE_LEVELS or currency == "USD":
        known = ", ".join(CURRENCIES[1:])
        raise BadRequestError(f"currency {currency!r}: expected one of {known}")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        raise BadRequestError(f"rate {rate!r}: expected a positive number")
    with state.lock:
        state.overrides[(rate_date, currency)] = float(rate)
    return {"date": rate_date.isoformat(), "currency": currency, "rate": float(rate)}


async def _read_json_object(request: Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    body = await read_json_body(request)
    if not isinstance(body, dict):
        raise BadRequestError("body: expected a JSON object")
    return body


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise BadRequestError(f"date {text!r}: expected YYYY-MM-DD") from error


class FxApiServer(BackgroundServer):
    """The stand-in on a background thread; a context manager. Binds its port when constructed."""

    thread_name = "fx-api-stand-in"

    def __init__(self, seed: int = 42, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = FxApiState(seed=seed)
        super().__init__(fx_api_app(self.state), host, port)

    @property
    def requests_served(self) -> int:
        """How many ``/v1`` requests reached the API so far (faulted ones included)."""
        with self.state.lock:
            return self.state.requests_served


def main(argv: Sequence[str] | None = None) -> None:
    """Run the stand-in in the foreground until SIGTERM or Ctrl-C."""
    parser = stand_in_arguments(__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    server = FxApiServer(seed=args.seed, host=args.host, port=args.port)

    serve_in_foreground(server, args.state_file, f"fx_api stand-in (seed {args.seed})")


if __name__ == "__main__":
    main()
