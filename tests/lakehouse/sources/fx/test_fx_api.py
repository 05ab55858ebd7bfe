"""The FX API stand-in: deterministic rates, corrections, injected faults, foreground mode."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from medallion.platform.devstack.fx_api import BASE_LEVELS, CURRENCIES, FxApiServer


def get_rates(url: str, rate_date: str, base: str = "USD") -> httpx.Response:
    return httpx.get(f"{url}/v1/rates", params={"date": rate_date, "base": base})


def test_rates_cover_every_currency_near_its_base_level(fx_api: FxApiServer) -> None:
    response = get_rates(fx_api.url, "2026-11-02")

    assert response.status_code == 200
    payload = response.json()
    assert (payload["date"], payload["base"]) == ("2026-11-02", "USD")
    assert list(payload["rates"]) == list(CURRENCIES)
    assert payload["rates"]["USD"] == 1.0
    for currency, rate in payload["rates"].items():
        assert rate == round(rate, 6)
        assert abs(rate / BASE_LEVELS[currency] - 1) <= 0.02


def test_same_seed_and_date_give_the_same_rates(fx_api: FxApiServer) -> None:
    with FxApiServer(seed=42) as twin, FxApiServer(seed=7) as other:
        first = get_rates(fx_api.url, "2026-11-02").json()
        again = get_rates(twin.url, "2026-11-02").json()
        other_seed = get_rates(other.url, "2026-11-02").json()
    next_day = get_rates(fx_api.url, "2026-11-03").json()

    assert first == again
    assert other_seed["rates"] != first["rates"]
    assert next_day["rates"] != first["rates"]


def test_other_bases_are_cross_rates(fx_api: FxApiServer) -> None:
    usd = get_rates(fx_api.url, "2026-11-02").json()["rates"]
    eur = get_rates(fx_api.url, "2026-11-02", base="EUR").json()["rates"]

    assert eur["EUR"] == 1.0
    assert eur["GBP"] == round(usd["GBP"] / usd["EUR"], 6)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"date": "2026-13-01", "base": "USD"}, "expected YYYY-MM-DD"),
        ({"base": "USD"}, "expected YYYY-MM-DD"),
        ({"date": "2026-11-02", "base": "XXX"}, "unknown base 'XXX'"),
    ],
)
def test_bad_requests_get_400_with_a_json_error(
    fx_api: FxApiServer, query: dict[str, str], message: str
) -> None:
    response = httpx.get(f"{fx_api.url}/v1/rates", params=query)

    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", "/admin/rates"), ("POST", "/v1/rates"), ("GET", "/health/")],
)
def test_unknown_resources_get_404_with_a_json_error(
    fx_api: FxApiServer, method: str, path: str
) -> None:
    response = httpx.request(method, f"{fx_api.url}{path}", json={})

    assert response.status_code == 404
    assert response.json() == {"error": f"no such resource: {path}"}


def test_the_port_is_held_from_construction_until_stop() -> None:
    server = FxApiServer(seed=42)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        with pytest.raises(OSError, match="in use"):
            FxApiServer(seed=42, port=port)
    finally:
        server.stop()

    FxApiServer(seed=42, port=port).stop()


def test_health_answers_ok(fx_api: FxApiServer) -> None:
    assert httpx.get(f"{fx_api.url}/health").json() == {"status": "ok"}


def test_a_correction_overrides_one_rate_of_one_date(fx_api: FxApiServer) -> None:
    before = get_rates(fx_api.url, "2026-11-02").json()["rates"]

    response = httpx.post(
        f"{fx_api.url}/admin/rates", json={"date": "2026-11-02", "currency": "EUR", "rate": 0.5}
    )

    assert response.status_code == 200
    after = get_rates(fx_api.url, "2026-11-02").json()["rates"]
    assert after == {**before, "EUR": 0.5}
    assert get_rates(fx_api.url, "2026-11-03").json()["rates"]["EUR"] != 0.5


def test_faults_fail_exactly_the_next_n_api_requests(fx_api: FxApiServer) -> None:
    httpx.post(f"{fx_api.url}/admin/faults", json={"fail_next": 2, "status": 503})

    statuses = [get_rates(fx_api.url, "2026-11-02").status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert fx_api.requests_served == 3


def test_a_429_fault_carries_retry_after(fx_api: FxApiServer) -> None:
    httpx.post(f"{fx_api.url}/admin/faults", json={"fail_next": 1, "status": 429, "retry_after": 2})

    response = get_rates(fx_api.url, "2026-11-02")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"


def test_health_is_never_faulted(fx_api: FxApiServer) -> None:
    httpx.post(f"{fx_api.url}/admin/faults", json={"fail_next": 1, "status": 503})

    assert httpx.get(f"{fx_api.url}/health").status_code == 200
    assert get_rates(fx_api.url, "2026-11-02").status_code == 503


def test_foreground_mode_writes_its_url_to_the_state_file(tmp_path: Path) -> None:
    state_file = tmp_path / "fx_api.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medallion.platform.devstack.fx_api",
            "--port",
            "0",
            "--seed",
            "42",
            "--state-file",
            str(state_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not state_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        state = json.loads(state_file.read_text())
        assert state["pid"] == process.pid
        assert httpx.get(f"{state['url']}/health").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not state_file.exists()
