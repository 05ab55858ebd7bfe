"""The warm driver: one local Spark + Delta JVM that serves Spark Connect to every notebook.

Starting Spark costs ~9 s; a Spark Connect client attaches in well under a second. The local
runner therefore starts one server per storage root (``medallion compute up``) and hands its URL
to each notebook kernel as ``SPARK_REMOTE``, the way Databricks Connect attaches to a cluster.
All sessions share the server's catalog, so a table one notebook writes is visible to the next.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from medallion.lakehouse.errors import ComputeUnavailable
from medallion.lakehouse.locks import file_lock
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack.service import pid_alive


@dataclass(frozen=True)
class ComputeServer:
    """A running compute server: where it listens and which process it is."""

    url: str
    pid: int
    storage_root: StorageRoot

    @property
    def port(self) -> int:
        """The Spark Connect port."""
        return int(self.url.rsplit(":", 1)[1])


def state_dir(storage_root: StorageRoot) -> Path:
    """Where the compute server keeps its state file, lock and log."""
    return storage_root.system / "compute"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    return pid_alive(pid)


def find_server(storage_root: StorageRoot) -> ComputeServer | None:
    """The server serving this storage root, if one is up and answering."""
    state_file = state_dir(storage_root) / "server.json"
    try:
        state = json.loads(state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    server = ComputeServer(state["url"], int(state["pid"]), StorageRoot(state["storage_root"]))
    if _alive(server.pid) and _port_open(server.port):
        return server
    return None


def startup_lock(storage_root: StorageRoot) -> contextlib.AbstractContextManager[None]:
    return file_lock(state_dir(storage_root) / "startup.lock")


def start_server(storage_root: StorageRoot, *, timeout_seconds: float = 180) -> ComputeServer:
    """Start a server for the storage root (or return the one already up)."""
    with startup_lock(storage_root):
        return _ensure_started(storage_root, timeout_seconds)


def _ensure_started(root: StorageRoot, timeout_seconds: float) -> ComputeServer:
    """Start the server unless it is up; the caller holds the startup lock."""
    running = find_server(root)
    if running:
        return running
    directory = state_dir(root)
    state_file = directory / "server.json"
    state_file.unlink(missing_ok=True)
    port = free_port()
    log_path = directory / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "medallion.platform.compute", "serve",
             "--storage-root", str(root), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ComputeUnavailable(
                f"compute server for {root} exited with code {process.returncode} while "
                f"starting; see {log_path}"
            )
        server = find_server(root)
        if server:
            return server
        time.sleep(0.2)
    process.kill()
    raise ComputeUnavailable(
        f"compute server for {root} did not listen on port {port} within "
        f"{timeout_seconds:.0f} s; see {log_path}"
    )


def stop_server(storage_root: StorageRoot, *, timeout_seconds: float = 30) -> bool:
    """Stop the storage root's server; True if one was running."""
    server = find_server(storage_root)
    state_file = state_dir(storage_root) / "server.json"
    if server is None:
        state_file.unlink(missing_ok=True)
        return False
    os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_seconds
    while _alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(server.pid):
        os.kill(server.pid, signal.SIGKILL)
    state_file.unlink(missing_ok=True)
    return True


def serve(storage_root: StorageRoot, port: int) -> None:
    """Run the server in this process until SIGTERM (the child side of ``start_server``)."""
    from medallion.lakehouse.spark import build_local_session

    spark = build_local_session(storage_root, connect_port=port)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    deadline = time.monotonic() + 60
    while not _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    # Warm the JVM (planner, codegen, Delta log reader) before the first client arrives.
    spark.sql("SELECT 1 AS warm").collect()
    state = {"url": f"sc://127.0.0.1:{port}", "pid": os.getpid(), "storage_root": str(storage_root)}
    state_file = state_dir(storage_root) / "server.json"
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(state_file)
    watcher = threading.Thread(
        target=stop_when_unleased, args=(storage_root, stopped), daemon=True,
        name="lease-watcher",
    )
    watcher.start()
    stopped.wait()
    spark.stop()


LEASE_CHECK_SECONDS = 5.0


def stop_when_unleased(
    storage_root: StorageRoot, stopped: threading.Event, every: float = LEASE_CHECK_SECONDS
) -> None:
    """Set ``stopped`` once the server has been leased and no live lease remains.

    A runner that was killed never releases its lease: its pid is gone, so the lease is dead
    and dropped here. Two checks in a row without a live lease stop the server (its state file
    removed first, under the startup lock, so no runner attaches to a server that is going).
    A server never leased (started by hand, for a benchmark) is left alone; one held by
    ``medallion compute up`` is pinned and stays.
    """
    leased, idle = False, 0
    while not stopped.wait(every):
        with startup_lock(storage_root):
            leased = leased or any(_leases(storage_root).iterdir())
            live = live_leases(storage_root)
            idle = 0 if live or not leased else idle + 1
            if idle >= 2:
                (state_dir(storage_root) / "server.json").unlink(missing_ok=True)
                stopped.set()


def main(argv: list[str] | None = None) -> None:
    """``python -m medallion.platform.compute serve --storage-root R --port P``."""
    parser = argparse.ArgumentParser(prog="python -m medallion.platform.compute")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--storage-root", required=True, type=StorageRoot)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    serve(args.storage_root, args.port)



def _leases(storage_root: StorageRoot) -> Path:
    path = state_dir(storage_root) / "leases"
    path.mkdir(parents=True, exist_ok=True)
    return path


def acquire_server(storage_root: StorageRoot, lease: str) -> ComputeServer:
    """Use the root's server (starting it if needed) until ``release_server(lease)``."""
    with startup_lock(storage_root):
        server = _ensure_started(storage_root, 180)
        (_leases(storage_root) / lease).write_text(str(os.getpid()))
    return server


def release_server(storage_root: StorageRoot, lease: str) -> None:
    """Drop a lease; the last runner to leave stops a server that only runs held leases.

    A server started with ``medallion compute up`` holds a permanent lease and stays up.
    """
    with startup_lock(storage_root):
        (_leases(storage_root) / lease).unlink(missing_ok=True)
        if not live_leases(storage_root):
            stop_server(storage_root)


def live_leases(storage_root: StorageRoot) -> list[str]:
    """The holders of the server's live leases (``pinned`` or a running pid); dead ones dropped.

    The caller holds the startup lock.
    """
    live = []
    for path in sorted(_leases(storage_root).iterdir()):
        try:
            holder = path.read_text().strip()
        except FileNotFoundError:
            continue
        if holder == "pinned" or (holder.isdigit() and _alive(int(holder))):
            live.append(holder)
        else:
            path.unlink(missing_ok=True)
    return live


def pin_server(storage_root: StorageRoot) -> ComputeServer:
    """Start the server and keep it up across runs (``medallion compute up``)."""
    with startup_lock(storage_root):
        server = _ensure_started(storage_root, 180)
        (_leases(storage_root) / "pinned").write_text("pinned")
    return server


def unpin_server(storage_root: StorageRoot) -> bool:
    """Stop the server whatever leases it holds (``medallion compute down``)."""
    with startup_lock(storage_root):
        for path in _leases(storage_root).iterdir():
            path.unlink(missing_ok=True)
        return stop_server(storage_root)


if __name__ == "__main__":
    main()
