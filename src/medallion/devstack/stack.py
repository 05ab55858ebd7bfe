"""``medallion devstack up|down|status``: the local stand-ins of the source systems.

Each service runs as a background process whose state file (``{"url", "pid"}``) lives under
``<storage_root>/_system/devstack/``; extractors find a service's URL there when their job
parameter leaves it empty. ``up`` is idempotent and ``down`` leaves nothing running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from medallion.errors import ConfigError, SourceUnavailable

SERVICES = ("fx_api",)


@dataclass(frozen=True)
class ServiceStatus:
    """One service: whether it answers, and where."""

    name: str
    running: bool
    url: str | None = None
    pid: int | None = None


def devstack_dir(storage_root: str | Path) -> Path:
    """Where the stand-ins keep their state files and logs."""
    return Path(storage_root).resolve() / "_system" / "devstack"


def _state(storage_root: str | Path, name: str) -> dict[str, str] | None:
    path = devstack_dir(storage_root) / f"{name}.json"
    try:
        state: dict[str, str] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def status(storage_root: str | Path) -> list[ServiceStatus]:
    """The state of every service."""
    statuses = []
    for name in SERVICES:
        state = _state(storage_root, name)
        if state and _healthy(state["url"]):
            statuses.append(ServiceStatus(name, True, state["url"], int(state["pid"])))
        else:
            statuses.append(ServiceStatus(name, False))
    return statuses


def up(
    storage_root: str | Path, *, seed: int = 42, timeout_seconds: float = 30
) -> list[ServiceStatus]:
    """Start every service that is not already answering, and wait until each is healthy."""
    directory = devstack_dir(storage_root)
    directory.mkdir(parents=True, exist_ok=True)
    for service in status(storage_root):
        if service.running:
            continue
        state_file = directory / f"{service.name}.json"
        state_file.unlink(missing_ok=True)
        with (directory / f"{service.name}.log").open("ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", f"medallion.devstack.{service.name}", "--port", "0",
                 "--seed", str(seed), "--state-file", str(state_file)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_seconds
        while not any(s.running for s in status(storage_root) if s.name == service.name):
            if time.monotonic() > deadline:
                raise SourceUnavailable(
                    f"devstack service {service.name} did not become healthy within "
                    f"{timeout_seconds:.0f} s; see {directory / (service.name + '.log')}"
                )
            time.sleep(0.1)
    return status(storage_root)


def down(storage_root: str | Path) -> list[str]:
    """Stop every service; returns the names of those that were running."""
    stopped = []
    for name in SERVICES:
        state = _state(storage_root, name)
        if not state:
            continue
        pid = int(state["pid"])
        try:
            os.kill(pid, signal.SIGTERM)
            stopped.append(name)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        (devstack_dir(storage_root) / f"{name}.json").unlink(missing_ok=True)
    return stopped


def service_url(storage_root: str | Path, name: str, configured: str = "") -> str:
    """``configured`` when given, else the running local stand-in's URL."""
    if configured:
        return configured.rstrip("/")
    state = _state(storage_root, name)
    if state is None:
        raise ConfigError(
            f"no URL configured for {name} and no local stand-in is running for "
            f"{Path(storage_root).resolve()}: start it with `medallion devstack up` or pass "
            f"the job parameter {name}_url"
        )
    return state["url"]
