"""A local stand-in of the HubSpot CRM v3 search API, serving CRM accounts as contacts.

``POST /crm/v3/objects/contacts/search`` takes HubSpot's search body
``{"filterGroups": [{"filters": [{"propertyName", "operator", "value"}]}], "sorts": [...],
"properties": [...], "limit": N, "after": "<cursor>"}`` (groups are ORed, filters in a group
ANDed; ``limit`` 1..100, default 10) and answers ``{"total", "results": [{"id", "properties",
"createdAt", "updatedAt", "archived"}], "paging": {"next": {"after"}}}``, without ``paging`` on the
last page. Results are ordered by (``lastmodifieddate``, ``id``) so offset cursors are stable while
the data does not change. Date filters take epoch milliseconds or ISO-8601, as HubSpot's do.

Accounts live in memory: ``POST /admin/records`` upserts a JSON list of
``{customer_id, name, email, phone, country, lifecycle_stage, last_modified_date}`` by
``customer_id``; a late update is simply a record whose ``last_modified_date`` is in the past. Only
``last_modified_date`` is parsed (it drives filtering and order, and is served in HubSpot's
``...T06:00:00.000Z`` form); every other value is served exactly as loaded, dirt included.

Like HubSpot, API requests are rate limited by a token bucket (429 with ``Retry-After``), and
need ``Authorization: Bearer <token>`` when the server has a token (401 otherwise).
``POST /admin/faults`` ``{"fail_next": N, "status": 503}`` (or ``429`` with an optional
``"retry_after"``) fails the next N API requests. ``/health`` and ``/admin`` are never faulted,
limited or authenticated, so the stand-in stays controllable while its API is "down".

Run it in the foreground with
``python -m medallion.platform.devstack.crm_api --port 0 --state-file PATH [--token-env NAME]``:
the token is read from the environment variable NAME, never from argv, and never logged. Once
listening it writes ``{"url": ..., "pid": ...}`` to PATH.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

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

SEARCH_PATH = "/crm/v3/objects/contacts/search"
ACCOUNT_FIELDS = ("customer_id", "name", "email", "phone", "country", "lifecycle_stage")
# HubSpot returns these with every search result, whatever ``properties`` asked for.
DEFAULT_PROPERTIES = ("createdate", "hs_object_id", "lastmodifieddate")
DATE_PROPERTIES = frozenset({"createdate", "lastmodifieddate"})
SORTABLE_PROPERTY = "lastmodifieddate"
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
FIRST_ID = 1001


def hubspot_timestamp(instant: datetime) -> str:
    """``instant`` the way HubSpot writes datetimes: UTC, milliseconds, ``Z``."""
    utc = instant.astimezone(UTC).isoformat(timespec="milliseconds")
    return utc.replace("+00:00", "Z")


class TokenBucket:
    """``rate_per_second`` tokens a second, at most ``capacity`` banked (thread-safe)."""

    def __init__(
        self,
        rate_per_second: float,
        capacity: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_second = rate_per_second
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> float | None:
        """Take one token and return None, or return the seconds until one is available."""
        with self._lock:
            now = self._clock()
            elapsed = now - self._updated
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate_per_second)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return (1 - self._tokens) / self.rate_per_second


@dataclass
class StoredAccount:
    """One account as the stand-in keeps it: HubSpot id, properties and parsed modified time."""

    id: str
    properties: dict[str, Any]
    modified: datetime
    created: datetime

    def sort_key(self) -> tuple[datetime, int]:
        """(lastmodifieddate, id): a total order, so offset paging is stable."""
        return self.modified, int(self.id)

    def to_result(self, properties: Sequence[str]) -> dict[str, Any]:
        """The HubSpot search result of this account, with ``properties`` plus the defaults."""
        names = dict.fromkeys([*properties, *DEFAULT_PROPERTIES])
        return {
            "id": self.id,
            "properties": {name: self.properties.get(name) for name in names},
            "createdAt": hubspot_timestamp(self.created),
            "updatedAt": hubspot_timestamp(self.modified),
            "archived": False,
        }


@dataclass
class CrmApiState(FaultInjection):
    """What the stand-in knows: accounts by customer_id and pending faults (thread-safe)."""

    accounts: dict[str, StoredAccount] = field(default_factory=dict)
    next_id: int = FIRST_ID

    def upsert(self, records: list[dict[str, Any]]) -> tuple[int, int]:
        """Insert or replace accounts by customer_id; returns (inserted, updated)."""
        parsed = [_parse_account(index, record) for index, record in enumerate(records)]
        inserted = updated = 0
        with self.lock:
            for customer_id, modified, properties in parsed:
                existing = self.accounts.get(customer_id)
                if existing is None:
                    account_id, created = str(self.next_id), modified
                    self.next_id += 1
                    inserted += 1
                else:
                    account_id, created = existing.id, existing.created
                    updated += 1
                properties |= {
                    "hs_object_id": account_id,
                    "createdate": hubspot_timestamp(created),
                    "lastmodifieddate": hubspot_timestamp(modified),
                }
                self.accounts[customer_id] = StoredAccount(
                    account_id, properties, modified, created
                )
        return inserted, updated

    def matching(
        self, predicate: Callable[[StoredAccount], bool], descending: bool
    ) -> list[StoredAccount]:
        """Every account ``predicate`` accepts, in (lastmodifieddate, id) order."""
        with self.lock:
            accounts = list(self.accounts.values())
        found = [account for account in accounts if predicate(account)]
        return sorted(found, key=StoredAccount.sort_key, reverse=descending)


def _parse_instant(value: Any, where: str) -> datetime:
    """A datetime from epoch milliseconds (number or digits) or ISO-8601; naive means UTC."""
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str) and value.strip().isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    try:
        instant = datetime.fromisoformat(str(value))
    except ValueError as error:
        raise BadRequestError(
            f"{where} {value!r}: expected epoch milliseconds or an ISO-8601 datetime"
        ) from error
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _parse_account(index: int, record: Any) -> tuple[str, datetime, dict[str, Any]]:
    """(customer_id, modified, properties) of one admin record; other values kept as given."""
    if not isinstance(record, dict):
        raise BadRequestError(f"records[{index}]: expected a JSON object")
    customer_id = record.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id:
        raise BadRequestError(
            f"records[{index}].customer_id {customer_id!r}: expected a non-empty string"
        )
    modified = _parse_instant(
        record.get("last_modified_date"), f"records[{index}].last_modified_date"
    )
    return customer_id, modified, {name: record.get(name) for name in ACCOUNT_FIELDS}


def _compile_filter(spec: Any, where: str) -> Callable[[StoredAccount], bool]:
    """A predicate for one HubSpot filter; comparisons only on date properties."""
    if not isinstance(spec, dict) or not isinstance(spec.get("propertyName"), str):
        raise BadRequestError(f"{where}: expected an object with a 'propertyName'")
    name, operator = spec["propertyName"], spec.get("operator", "EQ")
    if operator == "HAS_PROPERTY":
        return lambda account: account.properties.get(name) is not None
    if operator == "NOT_HAS_PROPERTY":
        return lambda account: account.properties.get(name) is None
    if operator in {"EQ", "NEQ"} and name not in DATE_PROPERTIES:
        wanted = str(spec.get("value"))
        equal = operator == "EQ"
        return lambda account: (str(account.properties.get(name)) == wanted) is equal
    if name not in DATE_PROPERTIES:
        raise BadRequestError(
            f"{where}: operator {operator!r} on {name!r} is not supported; the stand-in compares "
            f"only {sorted(DATE_PROPERTIES)} (EQ, NEQ, HAS_PROPERTY, NOT_HAS_PROPERTY elsewhere)"
        )
    value = _parse_instant(spec.get("value"), f"{where}.value")

    def instant(account: StoredAccount) -> datetime:
        return account.modified if name == "lastmodifieddate" else account.created

    if operator == "BETWEEN":
        high = _parse_instant(spec.get("highValue"), f"{where}.highValue")
        return lambda account: value <= instant(account) <= high
    comparisons: dict[str, Callable[[datetime], bool]] = {
        "EQ": lambda found: found == value,
        "NEQ": lambda found: found != value,
        "LT": lambda found: found < value,
        "LTE": lambda found: found <= value,
        "GT": lambda found: found > value,
        "GTE": lambda found: found >= value,
    }
    if operator not in comparisons:
        known = ", ".join([*comparisons, "BETWEEN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"])
        raise BadRequestError(f"{where}.operator {operator!r}: expected one of {known}")
    compare = comparisons[operator]
    return lambda account: compare(instant(account))


def _compile_filter_groups(groups: Any) -> Callable[[StoredAccount], bool]:
    """One predicate for ``filterGroups``: groups ORed, filters within a group ANDed."""
    if groups is None or groups == []:
        return lambda account: True
    if not isinstance(groups, list):
        raise BadRequestError("filterGroups: expected a list")
    compiled: list[list[Callable[[StoredAccount], bool]]] = []
    for g, group in enumerate(groups):
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise BadRequestError(f"filterGroups[{g}]: expected an object with a 'filters' list")
        compiled.append(
            [
                _compile_filter(spec, f"filterGroups[{g}].filters[{i}]")
                for i, spec in enumerate(filters)
            ]
        )
    return lambda account: any(all(test(account) for test in group) for group in compiled)


def _parse_sorts(sorts: Any) -> bool:
    """Whether ``sorts`` asks for descending order; only ``lastmodifieddate`` is sortable."""
    if sorts is None or sorts == []:
        return False
    valid = (
        isinstance(sorts, list)
        and len(sorts) == 1
        and isinstance(sorts[0], dict)
        and sorts[0].get("propertyName") == SORTABLE_PROPERTY
        and sorts[0].get("direction", "ASCENDING") in {"ASCENDING", "DESCENDING"}
    )
    if not valid:
        raise BadRequestError(
            f"sorts {sorts!r}: expected [] or one {{'propertyName': '{SORTABLE_PROPERTY}', "
            "'direction': 'ASCENDING' | 'DESCENDING'}"
        )
    return bool(sorts[0].get("direction") == "DESCENDING")


def _parse_page(body: dict[str, Any]) -> tuple[int, int]:
    """(offset, limit) of a search body; ``after`` is the offset as an opaque string."""
    limit = body.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadRequestError(f"limit {limit!r}: expected an integer from 1 to {MAX_LIMIT}")
    after = body.get("after")
    if after is None or after == "":
        return 0, limit
    if not isinstance(after, str) or not after.isdigit():
        raise BadRequestError(f"after {after!r}: expected a cursor from paging.next.after")
    return int(after), limit


def search(state: CrmApiState, body: dict[str, Any]) -> dict[str, Any]:
    """Answer one search body the way HubSpot's CRM v3 search endpoint does."""
    predicate = _compile_filter_groups(body.get("filterGroups"))
    descending = _parse_sorts(body.get("sorts"))
    offset, limit = _parse_page(body)
    properties = body.get("properties") or list(ACCOUNT_FIELDS)
    if not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
        raise BadRequestError(f"properties {properties!r}: expected a list of property names")
    found = state.matching(predicate, descending)
    page: dict[str, Any] = {
        "total": len(found),
        "results": [account.to_result(properties) for account in found[offset : offset + limit]],
    }
    if offset + limit < len(found):
        page["paging"] = {"next": {"after": str(offset + limit)}}
    return page


def crm_api_app(state: CrmApiState, token: str | None, bucket: TokenBucket | None) -> Starlette:
    """The CRM API over ``state``: ``/health``, the search endpoint and the test controls."""

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def search_contacts(request: Request) -> Response:
        body = await read_json_body(request)  # first: a body that is not JSON is never counted
        refused = _refusal(request, state, token, bucket)
        if refused is not None:
            return refused
        if not isinstance(body, dict):
            raise BadRequestError("body: expected a JSON object")
        return json_response(search(state, body))

    async def upsert_records(request: Request) -> Response:
        body = await read_json_body(request)
        if not isinstance(body, list):
            raise BadRequestError("body: expected a JSON list of account records")
        inserted, updated = state.upsert(body)
        return json_response({"inserted": inserted, "updated": updated})

    async def set_faults(request: Request) -> Response:
        return json_response(state.set_faults(await read_json_body(request)))

    routes = [
        Route("/health", health),
        Route(SEARCH_PATH, search_contacts, methods=["POST"]),
        Route("/admin/records", upsert_records, methods=["POST"]),
        Route("/admin/faults", set_faults, methods=["POST"]),
    ]
    return stand_in_app(routes, _not_found, _bad_request)


def _refusal(
    request: Request, state: CrmApiState, token: str | None, bucket: TokenBucket | None
) -> Response | None:
    """Count the request, and answer 401, an injected fault or 429 if due, in that order."""
    state.count_request()
    if token is not None and not _authorized(request, token):
        return _error_response(
            HTTPStatus.UNAUTHORIZED,
            "Authentication credentials not found or invalid.",
            category="INVALID_AUTHENTICATION",
            headers={"WWW-Authenticate": "Bearer"},
        )
    fault = state.take_fault()
    if fault is not None:
        status, retry_after = fault
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return _error_response(status, f"injected fault: {status}", headers=headers)
    wait = bucket.take() if bucket is not None else None
    if wait is not None:
        milliseconds = math.ceil(wait * 1000) / 1000
        return _error_response(
            HTTPStatus.TOO_MANY_REQUESTS,
            "You have reached your secondly limit.",
            category="RATE_LIMITS",
            headers={"Retry-After": f"{milliseconds:g}"},
        )
    return None


def _authorized(request: Request, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>`` (compared in constant time)."""
    scheme, _, presented = (request.headers.get("Authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )


def _not_found(request: Request, error: Exception) -> Response:
    """404 in HubSpot's error shape, naming the path."""
    return _error_response(HTTPStatus.NOT_FOUND, f"no such resource: {request.url.path}")


def _bad_request(request: Request, error: Exception) -> Response:
    """400 in HubSpot's error shape, as a ``VALIDATION_ERROR``."""
    return _error_response(HTTPStatus.BAD_REQUEST, str(error), category="VALIDATION_ERROR")


def _error_response(
    status: int,
    message: str,
    *,
    category: str = "ERROR",
    headers: dict[str, str] | None = None,
) -> Response:
    """An error in HubSpot's shape: ``{"status": "error", "message", "category"}``."""
    payload = {"status": "error", "message": message, "category": category}
    return json_response(payload, status, headers)


class CrmApiServer(BackgroundServer):
    """The stand-in on a background thread; a context manager. Binds its port when constructed.

    ``rate_per_second=None`` turns rate limiting off; ``burst`` (default: one second's worth)
    is how many requests may arrive at once before the bucket answers 429.
    """

    thread_name = "crm-api-stand-in"

    def __init__(
        self,
        token: str | None = None,
        rate_per_second: float | None = 10.0,
        burst: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.state = CrmApiState()
        bucket = None
        if rate_per_second is not None:
            capacity = burst if burst is not None else max(1.0, rate_per_second)
            bucket = TokenBucket(rate_per_second, capacity)
        super().__init__(crm_api_app(self.state, token, bucket), host, port)

    @property
    def requests_served(self) -> int:
        """How many search requests reached the API so far (refused ones included)."""
        with self.state.lock:
            return self.state.requests_served


def main(argv: Sequence[str] | None = None) -> None:
    """Run the stand-in in the foreground until SIGTERM or Ctrl-C."""
    parser = stand_in_arguments(__doc__.splitlines()[0])
    parser.add_argument("--rate-per-second", type=float, default=10.0)
    parser.add_argument(
        "--token-env", help="name of the environment variable holding the bearer token to require"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            parser.error(f"--token-env {args.token_env}: that environment variable is not set")
    server = CrmApiServer(
        token=token, rate_per_second=args.rate_per_second, host=args.host, port=args.port
    )

    auth = f"bearer token from ${args.token_env}" if token else "no auth"
    serve_in_foreground(server, args.state_file, f"crm_api stand-in ({auth})")


if __name__ == "__main__":
    main()
