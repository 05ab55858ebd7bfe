"""Fixtures of the CRM slice: the in-process CRM API stand-in and a handful of accounts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from medallion.platform.devstack.crm_api import CrmApiServer

TOKEN = "pat-na1-s3cr3t-t0k3n"


def account(number: int, last_modified_date: str, **changes: Any) -> dict[str, Any]:
    """One admin record of the stand-in, customer ``C{number:03d}``."""
    return {
        "customer_id": f"C{number:03d}",
        "name": f"Customer {number}",
        "email": f"customer{number}@example.com",
        "phone": f"+1-555-{number:04d}",
        "country": "US",
        "lifecycle_stage": "customer",
        "last_modified_date": last_modified_date,
        **changes,
    }


def load_accounts(server: CrmApiServer, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Upsert ``records`` through the stand-in's admin endpoint."""
    response = httpx.post(f"{server.url}/admin/records", json=records)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
def crm_api() -> Iterator[CrmApiServer]:
    """A fresh stand-in without auth or rate limit, for one test."""
    with CrmApiServer(token=None, rate_per_second=None) as server:
        yield server


@pytest.fixture
def crm_api_with_token() -> Iterator[CrmApiServer]:
    """A fresh stand-in that requires ``TOKEN``, without rate limit, for one test."""
    with CrmApiServer(token=TOKEN, rate_per_second=None) as server:
        yield server
