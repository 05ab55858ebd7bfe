"""Fixtures of the CRM raw-landing slice: the in-process CRM API stand-in and account helpers."""

from __future__ import annotations

import json
from typing import Any

import httpx

from medallion.lakehouse.raw.landing import LoadManifest
from medallion.platform.devstack.crm_api import CrmApiServer
from tests.lakehouse.sources.crm.conftest import TOKEN, account, crm_api, crm_api_with_token

__all__ = ["TOKEN", "account", "crm_api", "crm_api_with_token", "landed", "landed_ids", "upsert"]

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
