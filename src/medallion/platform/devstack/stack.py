"""``medallion devstack up|down|status``: the local stand-ins of the source systems.

Every service follows the contract in ``medallion.platform.devstack.service``: ``up`` is idempotent
and health-checked, ``down`` leaves nothing running, state lives under
``<storage_root>/_system/devstack/<name>/``. On the local target the edge (a notebook's first
cells, the CLI) fills each endpoint its job parameters leave empty from there
(``local_stand_ins``), and the stand-ins' own credentials come with them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import httpx

from medallion.lakehouse.environment import StandIns
from medallion.lakehouse.errors import ConfigError, SourceUnavailable
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack.service import (
    ServiceInfo,
    pid_alive,
    read_info,
    service_dir,
    write_info,
)


@dataclass(frozen=True)
class HttpStandIn:
    """One of our Python HTTP stand-ins, run as ``python -m <module>`` in the background."""

    name: str
    module: str
    extra_args: Callable[[], list[str]]

    def status(self, storage_root: StorageRoot) -> ServiceInfo | None:
        """The running service, if it answers its health check."""
        info = read_info(storage_root, self.name)
        if info is None or not pid_alive(info.pid):
            return None
        try:
            healthy = httpx.get(f"{info.url}/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            healthy = False
        return info if healthy else None

    def up(self, storage_root: StorageRoot, *, timeout_seconds: float = 30) -> ServiceInfo:
        """Start it unless it already answers."""
        running = self.status(storage_root)
        if running:
            return running
        directory = service_dir(storage_root, self.name)
        directory.mkdir(parents=True, exist_ok=True)
        process_file = directory / "process.json"
        process_file.unlink(missing_ok=True)
        with (directory / "service.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", self.module, "--port", "0",
                 "--state-file", str(process_file), *self.extra_args()],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_seconds
        while not process_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SourceUnavailable(
                    f"devstack service {self.name} did not start; see {directory / 'service.log'}"
                )
            time.sleep(0.05)
        process_state = json.loads(process_file.read_text())
        info = ServiceInfo(self.name, process_state["url"], int(process_state["pid"]))
        write_info(storage_root, info)
        while self.status(storage_root) is None:
            if time.monotonic() > deadline:
                raise SourceUnavailable(f"devstack service {self.name} is not healthy; see "
                                        f"{directory / 'service.log'}")
            time.sleep(0.05)
        return info

    def down(self, storage_root: StorageRoot) -> bool:
        """Stop it; True if it was running."""
        info = read_info(storage_root, self.name)
        if info is None or not pid_alive(info.pid):
            return False
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)
        return True


def _crm_args() -> list[str]:
    return ["--token-env", "MEDALLION_CRM_TOKEN"] if os.environ.get("MEDALLION_CRM_TOKEN") else []


HTTP_STAND_INS = {
    "fx_api": HttpStandIn("fx_api", "medallion.platform.devstack.fx_api", lambda: ["--seed", "42"]),
    "crm_api": HttpStandIn("crm_api", "medallion.platform.devstack.crm_api", _crm_args),
}
# Service modules that follow the contract in medallion.platform.devstack.service themselves.
MODULE_SERVICES: dict[str, str] = {
    "postgres": "medallion.platform.devstack.postgres",
    "kafka": "medallion.platform.devstack.kafka",
    "snowflake": "medallion.platform.devstack.snowflake",
}
SERVICES = (*HTTP_STAND_INS, *MODULE_SERVICES)


@dataclass(frozen=True)
class ServiceStatus:
    """One service: whether it answers, and where."""

    name: str
    running: bool
    url: str | None = None
    pid: int | None = None


def _service(name: str) -> HttpStandIn | ModuleType:
    if name in HTTP_STAND_INS:
        return HTTP_STAND_INS[name]
    return importlib.import_module(MODULE_SERVICES[name])


def _status_of(name: str, info: ServiceInfo | None) -> ServiceStatus:
    return ServiceStatus(name, True, info.url, info.pid) if info else ServiceStatus(name, False)


def status(storage_root: StorageRoot, services: tuple[str, ...] = SERVICES) -> list[ServiceStatus]:
    """The state of each service."""
    return [_status_of(name, _service(name).status(storage_root)) for name in services]


def up(storage_root: StorageRoot, services: tuple[str, ...] = SERVICES) -> list[ServiceStatus]:
    """Start every service that is not already answering, and wait until each is healthy."""
    return [_status_of(name, _service(name).up(storage_root)) for name in services]


def down(storage_root: StorageRoot, services: tuple[str, ...] = SERVICES) -> list[str]:
    """Stop every service; returns the names of those that were running."""
    return [name for name in services if _service(name).down(storage_root)]


def service_url(storage_root: StorageRoot, name: str, configured: str = "") -> str:
    """``configured`` when given, else the running local stand-in's URL."""
    if configured:
        return configured.rstrip("/")
    info = read_info(storage_root, name)
    if info is None:
        raise ConfigError(_not_running(storage_root, f"{name}_url", f"stand-in of {name}"))
    return info.url


# A stand-in's endpoint and credentials (secret key -> value), or None when it is not running.
StandIn = tuple[str, dict[str, str]] | None


def _snowflake_stand_in(root: StorageRoot) -> StandIn:
    """The fakesnow server's URL (``parse_url`` form) and the credentials it was given."""
    from medallion.platform.devstack import snowflake

    info = snowflake.status(root)
    if info is None:
        return None
    settings = snowflake.settings_for(info)
    url = (f"{settings.protocol}://{settings.host}:{settings.port}"
           f"?account={settings.account}&database={settings.database}")
    return url, {"snowflake-user": settings.user, "snowflake-password": settings.password}


def _postgres_stand_in(root: StorageRoot) -> StandIn:
    """The PostgreSQL stand-in of Redshift: its URL and the role it made (``medallion``)."""
    from medallion.platform.devstack import postgres

    settings = postgres.client_settings(root)
    if settings is None:
        return None
    url = dataclasses.replace(settings, user="").url  # no user name in the endpoint
    return url, {"redshift-user": settings.user, "redshift-password": settings.password or ""}


def _http_stand_in(name: str) -> Callable[[StorageRoot], StandIn]:
    """The lookup of one of our HTTP stand-ins: its base URL, no credentials of its own."""

    def stand_in(root: StorageRoot) -> StandIn:
        info = read_info(root, name)
        return (info.url.rstrip("/"), {}) if info is not None else None

    return stand_in


def _kafka_stand_in(root: StorageRoot) -> StandIn:
    """The local broker's bootstrap address."""
    info = read_info(root, "kafka")
    return (info.details["bootstrap_servers"], {}) if info is not None else None


# Endpoint name -> how its stand-in is found, and what it is called in messages.
STAND_IN_ENDPOINTS: dict[str, tuple[Callable[[StorageRoot], StandIn], str]] = {
    "snowflake_url": (_snowflake_stand_in, "Snowflake stand-in"),
    "redshift_url": (_postgres_stand_in, "PostgreSQL stand-in"),
    "crm_api_url": (_http_stand_in("crm_api"), "stand-in of crm_api"),
    "fx_api_url": (_http_stand_in("fx_api"), "stand-in of fx_api"),
    "kafka_bootstrap_servers": (_kafka_stand_in, "Kafka broker"),
}


def local_stand_ins(
    storage_root: StorageRoot, endpoints: tuple[str, ...] = tuple(STAND_IN_ENDPOINTS)
) -> StandIns:
    """What the stand-ins of ``storage_root`` offer ``Environment.resolve`` on the local target:
    each running one's endpoint and credentials, and for each other one the error to raise."""
    found: dict[str, str] = {}
    credentials: dict[str, dict[str, str]] = {}
    unavailable: dict[str, str] = {}
    for name in endpoints:
        lookup, label = STAND_IN_ENDPOINTS[name]
        stand_in = lookup(storage_root)
        if stand_in is None:
            unavailable[name] = _not_running(storage_root, name, label)
        else:
            found[name], credentials[name] = stand_in
    return StandIns(found, credentials, unavailable)


def _not_running(storage_root: StorageRoot, endpoint: str, label: str) -> str:
    return (f"no {endpoint} configured and no local {label} is running for "
            f"{storage_root}: start it with `medallion devstack up` or pass the "
            f"job parameter {endpoint}")
