"""Fixtures of the Redshift slice: one real PostgreSQL 15 stand-in for the module, a fresh table."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from medallion.lakehouse.sources.redshift import PostgresWarehouse, create_behavior_table
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import postgres
from medallion.platform.devstack.service import ServiceInfo

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def event(number: int, minutes: int, **changes: Any) -> dict[str, Any]:
    """One v1 behavior event ``E{number:04d}`` at ``T0 + minutes``."""
    return {
        "event_id": f"E{number:04d}",
        "session_id": f"S{number // 3:04d}",
        "customer_id": f"C{number % 7:03d}",
        "event_type": "page_view",
        "event_ts": T0 + timedelta(minutes=minutes),
        "page": f"/p/{number}",
        "device": "web",
        **changes,
    }


def closed_port() -> int:
    """A port nothing listens on: bound to find it free, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_processes(data_dir: str) -> list[int]:
    """Pids of live processes whose command line names ``data_dir`` (zombies have none)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if data_dir in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="session")
def pg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The storage root of the suite's PostgreSQL stand-in."""
    return tmp_path_factory.mktemp("redshift-root")


@pytest.fixture(scope="session")
def pg_service(pg_root: Path) -> Iterator[ServiceInfo]:
    """The PostgreSQL stand-in, up for the session; stopped and deleted at teardown."""
    info = postgres.up(StorageRoot(pg_root))
    yield info
    # its data may live outside pg_root, in /var/tmp/medallion-pg
    postgres.destroy(StorageRoot(pg_root))


@pytest.fixture
def warehouse(pg_root: Path, pg_service: ServiceInfo) -> Iterator[PostgresWarehouse]:
    """A connection to the stand-in with an empty ``analytics.behavior``."""
    settings = postgres.client_settings(StorageRoot(pg_root), info=pg_service)
    assert settings is not None
    conn = PostgresWarehouse.connect(settings)
    conn.execute("DROP TABLE IF EXISTS analytics.behavior")
    create_behavior_table(conn)
    yield conn
    conn.close()
