"""The contract every local stand-in module follows, so ``medallion devstack`` can drive them all.

A service module ``medallion.platform.devstack.<name>`` exposes::

    up(storage_root: StorageRoot) -> ServiceInfo  # idempotent; health-checked before it returns
    down(storage_root: StorageRoot) -> bool       # True if it was running; leaves nothing behind
    status(storage_root: StorageRoot) -> ServiceInfo | None

Each keeps its data, logs and state file under ``<storage_root>/_system/devstack/<name>/`` and
picks a free port when its default is taken.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medallion.lakehouse.storage import StorageRoot


@dataclass(frozen=True)
class ServiceInfo:
    """A running stand-in: how clients reach it."""

    name: str
    url: str
    pid: int
    details: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialised form for the state file."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServiceInfo:
        """Parse what ``to_json`` wrote."""
        data = json.loads(text)
        return cls(data["name"], data["url"], int(data["pid"]), dict(data.get("details", {})))


def service_dir(storage_root: StorageRoot, name: str) -> Path:
    """Where service ``name`` keeps its data, logs and state file."""
    return storage_root.system / "devstack" / name


def write_info(storage_root: StorageRoot, info: ServiceInfo) -> Path:
    """Write the service's state file atomically."""
    directory = service_dir(storage_root, info.name)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "service.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(info.to_json())
    tmp.replace(path)
    return path


def read_info(storage_root: StorageRoot, name: str) -> ServiceInfo | None:
    """The service's last state file, if any (it may describe a process that is gone)."""
    path = service_dir(storage_root, name) / "service.json"
    try:
        return ServiceInfo.from_json(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def owns_listening_port(pid: int, port: int) -> bool:
    """True when process ``pid`` holds the TCP socket listening on ``port``.

    Another process answering on the port is not the service we started: two stand-ins that
    picked the same free port at once must tell which of them won the bind.
    """
    import psutil  # the `local` extra's: this module is imported on a cluster too, without it

    try:
        sockets = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:  # gone, or not ours to inspect
        return False
    return any(sock.status == psutil.CONN_LISTEN and sock.laddr.port == port for sock in sockets)


def pick_port(preferred: int) -> int:
    """``preferred`` if free, else (or when it is 0) any free port."""
    if preferred > 0 and port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` runs (a finished child of ours is reaped, not counted)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
