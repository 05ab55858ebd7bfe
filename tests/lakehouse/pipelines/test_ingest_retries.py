"""The waits between an ingest step's source tries: job parameter source_retry_wait_seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from medallion.lakehouse.environment import LOCAL, Endpoints, Environment
from medallion.lakehouse.errors import ConfigError, SourceUnavailable
from medallion.lakehouse.pipelines.ingest import (
    IngestResult,
    ingest_crm_accounts,
    ingest_fx,
    ingest_redshift_behavior,
    ingest_snowflake_orders,
)
from medallion.lakehouse.storage import StorageRoot
from tests.support.alert_receivers import free_port

DAY = date(2026, 11, 25)
Step = Callable[..., IngestResult]


def nowhere(root: Path) -> Environment:
    """Every retried source's endpoint on a port nothing listens on."""
    port = free_port()
    endpoints = Endpoints(
        snowflake_url=f"http://127.0.0.1:{port}?account=x",
        redshift_url=f"postgresql://127.0.0.1:{port}/db",
        crm_api_url=f"http://127.0.0.1:{port}",
        fx_api_url=f"http://127.0.0.1:{port}",
    )
    return Environment.resolve(StorageRoot(root), endpoints=endpoints, target=LOCAL)


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "REDSHIFT_USER", "REDSHIFT_PASSWORD"):
        monkeypatch.setenv(f"MEDALLION_{name}", "x")


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize("step", [ingest_snowflake_orders, ingest_redshift_behavior,
                                  ingest_crm_accounts, ingest_fx])
@pytest.mark.parametrize("wait", [-0.5, float("nan")])
def test_a_wait_that_is_not_zero_or_more_seconds_is_refused_before_any_request(
    step: Step, wait: float, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=rf"^source_retry_wait_seconds={wait}: expected a number "
                                          r"of seconds, 0 or more$"):
        step(nowhere(tmp_path), DAY, retry_wait_seconds=wait)


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(("step", "tries", "jitter"), [
    (ingest_crm_accounts, 5, True),
    (ingest_fx, 5, True),
    (ingest_redshift_behavior, 3, False),  # the PostgreSQL stand-in's connection
])
def test_the_client_waits_from_the_steps_retry_wait_doubling_each_time(
    step: Step, tries: int, jitter: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    sleep, this_thread = time.sleep, threading.get_ident()

    def record(seconds: float) -> None:  # the step's own waits; other threads still sleep
        if threading.get_ident() == this_thread:
            waits.append(seconds)
        else:
            sleep(seconds)

    monkeypatch.setattr(time, "sleep", record)

    with pytest.raises(SourceUnavailable, match=f"{tries} attempt"):
        step(nowhere(tmp_path), DAY, retry_wait_seconds=0.25)

    assert len(waits) == tries - 1
    for index, seconds in enumerate(waits):
        least = 0.25 * 2 ** index
        assert least <= seconds <= least + (0.25 if jitter else 0), waits
