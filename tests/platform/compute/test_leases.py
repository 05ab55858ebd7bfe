"""The warm server's leases: a killed runner's lease is dead, and an unleased server stops."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from medallion.lakehouse.storage import StorageRoot
from medallion.platform import compute


def lease(root: Path, name: str, holder: str) -> None:
    directory = compute.state_dir(StorageRoot(root)) / "leases"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(holder)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def stops_by_itself(root: Path, within: float) -> bool:
    """Whether the server's lease watcher (checking every 10 ms) stops it within ``within`` s."""
    stopped = threading.Event()
    watcher = threading.Thread(
        target=compute.stop_when_unleased, args=(StorageRoot(root), stopped, 0.01)
    )
    watcher.start()
    watcher.join(timeout=within)  # returns as soon as the watcher stops the server
    by_itself = not watcher.is_alive()
    stopped.set()  # ends a watcher that is still watching
    watcher.join()
    return by_itself


def test_leases_of_dead_runners_are_dropped_and_live_ones_kept(tmp_path: Path) -> None:
    lease(tmp_path, "killed-run", str(dead_pid()))
    lease(tmp_path, "this-run", str(os.getpid()))
    lease(tmp_path, "up", "pinned")

    assert compute.live_leases(StorageRoot(tmp_path)) == [str(os.getpid()), "pinned"]
    leases = compute.state_dir(StorageRoot(tmp_path)) / "leases"
    assert sorted(p.name for p in leases.iterdir()) == [
        "this-run", "up"
    ]


def test_a_server_whose_only_runner_was_killed_stops_itself(tmp_path: Path) -> None:
    lease(tmp_path, "killed-run", str(dead_pid()))
    state = compute.state_dir(StorageRoot(tmp_path)) / "server.json"
    state.write_text("{}")

    assert stops_by_itself(tmp_path, within=5)
    assert not state.exists()


def test_a_held_or_never_leased_server_stays_up(tmp_path: Path) -> None:
    held, never = tmp_path / "held", tmp_path / "never"
    lease(held, "this-run", str(os.getpid()))
    compute.state_dir(StorageRoot(never)).mkdir(parents=True)
    for root in (held, never):
        (compute.state_dir(StorageRoot(root)) / "server.json").write_text("{}")

    assert not stops_by_itself(held, within=0.5)
    assert not stops_by_itself(never, within=0.5)
    assert (compute.state_dir(StorageRoot(held)) / "server.json").exists()
    assert (compute.state_dir(StorageRoot(never)) / "server.json").exists()
