"""Fixtures of the CRM raw-landing slice: the in-process CRM API stand-in and account helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from medallion.devstack.crm_api import CrmApiServer
from medallion.raw.landing import LoadManifest

TOKEN = "pat-na1-raw-t0k3n"


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


def upsert(server: CrmApiServer, records: list[dict[str, Any]]) -> None:
    """Upsert ``records`` through the stand-in's ``POST /admin/records``."""
    httpx.post(f"{server.url}/admin/records", json=records).raise_for_status()


def landed(manifest: LoadManifest) -> list[dict[str, Any]]:
    """The records of a load, from the files its manifest lists, in order."""
    return [
        json.loads(line)
        for path in manifest.data_paths
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def landed_ids(manifest: LoadManifest) -> set[str]:
    """The customer_ids of a load."""
    return {record["customer_id"] for record in landed(manifest)}


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
