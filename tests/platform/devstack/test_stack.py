"""`medallion devstack`: idempotent up, health-checked, and down leaves nothing running."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx

from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import stack
from medallion.platform.devstack.service import (
    owns_listening_port,
    pick_port,
    pid_alive,
    port_is_free,
    read_info,
)

HTTP_SERVICES = ("fx_api", "crm_api")


def test_up_is_idempotent_and_down_stops_everything(tmp_path: Path) -> None:
    first = stack.up(StorageRoot(tmp_path), HTTP_SERVICES)
    second = stack.up(StorageRoot(tmp_path), HTTP_SERVICES)

    assert [s.running for s in first] == [True, True]
    assert second == first
    for service in first:
        assert httpx.get(f"{service.url}/health", timeout=2).status_code == 200

    assert stack.down(StorageRoot(tmp_path), HTTP_SERVICES) == ["fx_api", "crm_api"]
    assert [s.running for s in stack.status(StorageRoot(tmp_path), HTTP_SERVICES)] == [False, False]
    for service in first:
        assert service.pid is not None
        assert not pid_alive(service.pid)
    assert stack.down(StorageRoot(tmp_path), HTTP_SERVICES) == []


def test_service_url_prefers_the_configured_url(tmp_path: Path) -> None:
    assert stack.service_url(StorageRoot(tmp_path), "fx_api", "http://rates.example/") == "http://rates.example"


def test_service_url_reads_the_running_stand_in(tmp_path: Path) -> None:
    (fx,) = stack.up(StorageRoot(tmp_path), ("fx_api",))
    try:
        assert stack.service_url(StorageRoot(tmp_path), "fx_api") == fx.url
        info = read_info(StorageRoot(tmp_path), "fx_api")
        assert info is not None
        assert info.pid == fx.pid
        assert info.pid != os.getpid()
    finally:
        stack.down(StorageRoot(tmp_path), ("fx_api",))


def test_a_listening_port_belongs_to_the_process_that_bound_it() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        assert owns_listening_port(os.getpid(), port) is True
        assert owns_listening_port(os.getppid(), port) is False
    assert owns_listening_port(os.getpid(), port) is False  # closed: nobody listens


def test_pick_port_zero_means_any_free_port() -> None:
    port = pick_port(0)

    assert port > 0
    assert port_is_free(port)
