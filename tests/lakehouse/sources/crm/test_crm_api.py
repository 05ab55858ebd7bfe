"""The CRM API stand-in: HubSpot's search shape, upserts, auth, rate limit, faults, foreground."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from medallion.platform.devstack.crm_api import SEARCH_PATH, CrmApiServer, TokenBucket
from tests.lakehouse.sources.crm.conftest import TOKEN, account, load_accounts

WINDOW = [
    {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "2026-11-02T00:00:00Z"},
    {"propertyName": "lastmodifieddate", "operator": "LT", "value": "1793664000000"},  # 2026-11-03
]


def search(server: CrmApiServer, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{server.url}{SEARCH_PATH}", json=body, headers=headers)


def test_search_answers_in_hubspot_shape_with_paging(crm_api: CrmApiServer) -> None:
    load_accounts(crm_api, [account(2, "2026-11-02T07:00:00Z"), account(1, "2026-11-02T06:00:00Z")])

    first = search(crm_api, {"limit": 1, "properties": ["customer_id", "email"]}).json()
    last = search(crm_api, {"limit": 1, "after": first["paging"]["next"]["after"]}).json()

    assert first == {
        "total": 2,
        "results": [
            {
                "id": "1002",
                "properties": {
                    "customer_id": "C001",
                    "email": "customer1@example.com",
                    "createdate": "2026-11-02T06:00:00.000Z",
                    "hs_object_id": "1002",
                    "lastmodifieddate": "2026-11-02T06:00:00.000Z",
                },
                "createdAt": "2026-11-02T06:00:00.000Z",
                "updatedAt": "2026-11-02T06:00:00.000Z",
                "archived": False,
            }
        ],
        "paging": {"next": {"after": "1"}},
    }
    assert "paging" not in last
    assert [r["properties"]["customer_id"] for r in last["results"]] == ["C002"]
    assert last["results"][0]["properties"]["phone"] == "+1-555-0002"


def test_filters_by_lastmodifieddate_in_millis_or_iso(crm_api: CrmApiServer) -> None:
    load_accounts(
        crm_api,
        [
            account(1, "2026-11-01T23:59:59.999Z"),
            account(2, "2026-11-02T00:00:00Z"),
            account(3, "2026-11-02T23:59:59+00:00"),
            account(4, "2026-11-03T00:00:00Z"),
        ],
    )

    page = search(crm_api, {"filterGroups": [{"filters": WINDOW}]}).json()

    assert page["total"] == 2
    assert [r["properties"]["customer_id"] for r in page["results"]] == ["C002", "C003"]


def test_upsert_replaces_by_customer_id_and_keeps_the_id(crm_api: CrmApiServer) -> None:
    assert load_accounts(crm_api, [account(1, "2026-11-02T06:00:00Z")]) == {
        "inserted": 1,
        "updated": 0,
    }

    answer = load_accounts(crm_api, [account(1, "2026-11-01T06:00:00Z", email=None)])

    assert answer == {"inserted": 0, "updated": 1}
    (result,) = search(crm_api, {}).json()["results"]
    assert (result["id"], result["properties"]["email"]) == ("1001", None)
    assert result["properties"]["lastmodifieddate"] == "2026-11-01T06:00:00.000Z"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"limit": 101}, "limit 101: expected an integer from 1 to 100"),
        ({"after": "abc"}, "after 'abc': expected a cursor"),
        (
            {"filterGroups": [{"filters": [{"propertyName": "name", "operator": "GT"}]}]},
            "operator 'GT' on 'name' is not supported",
        ),
        (
            {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "value": "x"}]}]},
            "filterGroups[0].filters[0].value 'x': expected epoch milliseconds",
        ),
        ({"sorts": [{"propertyName": "name"}]}, "sorts [{'propertyName': 'name'}]: expected"),
    ],
)
def test_bad_search_bodies_get_400(
    crm_api: CrmApiServer, body: dict[str, Any], message: str
) -> None:
    response = search(crm_api, body)

    assert response.status_code == 400
    assert message in response.json()["message"]


def test_admin_rejects_a_record_without_a_valid_date(crm_api: CrmApiServer) -> None:
    response = httpx.post(
        f"{crm_api.url}/admin/records", json=[account(1, "2026-11-02T06:00:00Z"), account(2, "")]
    )

    assert response.status_code == 400
    assert "records[1].last_modified_date ''" in response.json()["message"]
    assert search(crm_api, {}).json()["total"] == 0


def test_a_body_that_is_not_json_gets_400_and_is_not_counted(crm_api: CrmApiServer) -> None:
    response = httpx.post(f"{crm_api.url}{SEARCH_PATH}", content=b"{not json")

    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert crm_api.requests_served == 0


def test_values_are_served_back_exactly_as_loaded(crm_api: CrmApiServer) -> None:
    dirty = b'"name": "Zo\\u00eb", "phone": NaN'  # ASCII escapes and a NaN, as json.dumps writes
    record = b'{"customer_id": "C1", ' + dirty + b', "last_modified_date": "2026-11-02"}'
    httpx.post(f"{crm_api.url}/admin/records", content=b"[" + record + b"]")

    body = search(crm_api, {"properties": ["name", "phone"]}).content

    assert dirty in body


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_search_needs_the_bearer_token(crm_api_with_token: CrmApiServer, token: str | None) -> None:
    response = search(crm_api_with_token, {}, token=token)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert search(crm_api_with_token, {}, token=TOKEN).status_code == 200
    assert httpx.get(f"{crm_api_with_token.url}/health").status_code == 200


def test_token_bucket_answers_429_under_a_burst() -> None:
    # One token per 10 s: no token comes back during the burst, however busy the machine (at 2/s
    # a burst that took over 0.5 s on a loaded CI machine got a fifth 200).
    with CrmApiServer(rate_per_second=0.1, burst=3) as server:
        statuses = [search(server, {}).status_code for _ in range(5)]
        refused = search(server, {})

    assert statuses == [200, 200, 200, 429, 429]
    assert refused.json()["category"] == "RATE_LIMITS"
    assert 0 < float(refused.headers["Retry-After"]) <= 10


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate_per_second=4, capacity=1, clock=lambda: now[0])

    taken = [bucket.take(), bucket.take()]
    now[0] = 0.25

    assert taken == [None, 0.25]
    assert bucket.take() is None


def test_faults_fail_exactly_the_next_n_search_requests(crm_api: CrmApiServer) -> None:
    httpx.post(f"{crm_api.url}/admin/faults", json={"fail_next": 2, "status": 503})

    statuses = [search(crm_api, {}).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert httpx.get(f"{crm_api.url}/health").status_code == 200
    assert crm_api.requests_served == 3


def test_foreground_mode_reads_the_token_from_the_environment(tmp_path: Path) -> None:
    state_file = tmp_path / "crm_api.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medallion.platform.devstack.crm_api",
            "--port",
            "0",
            "--state-file",
            str(state_file),
            "--token-env",
            "CRM_TEST_TOKEN",
        ],
        env={**os.environ, "CRM_TEST_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while not state_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        state = json.loads(state_file.read_text())
        url = f"{state['url']}{SEARCH_PATH}"
        assert state["pid"] == process.pid
        assert httpx.post(url, json={}).status_code == 401
        assert httpx.post(url, json={}, headers={"Authorization": f"Bearer {TOKEN}"}).is_success
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert not state_file.exists()
    assert b"listening on" in output
    assert TOKEN.encode() not in output
