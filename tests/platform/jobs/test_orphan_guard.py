"""A kernel whose runner is killed interrupts its Spark session's work and ends, at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

# The kernel: guards a session that records interruptAll, then works on (sleeps).
KERNEL = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from medallion.lakehouse.spark import interrupt_when_orphaned

    class Session:
        def interruptAll(self):
            Path(sys.argv[1]).write_text("interrupted")
            return []

    interrupt_when_orphaned(Session(), poll_seconds=0.05)
    Path(sys.argv[1] + ".ready").write_text("ready")
    time.sleep(60)
""")
# The runner: starts the kernel, says its pid, waits to be killed.
RUNNER = textwrap.dedent("""
    import subprocess, sys, time
    kernel = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
    print(kernel.pid, flush=True)
    time.sleep(60)
""")


def test_killing_the_runner_interrupts_the_session_and_ends_the_kernel(tmp_path: Path) -> None:
    marker = tmp_path / "session"
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, KERNEL, str(marker)],
                              stdout=subprocess.PIPE, text=True)
    assert runner.stdout is not None
    kernel = psutil.Process(int(runner.stdout.readline()))
    deadline = time.monotonic() + 30
    while not Path(f"{marker}.ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not marker.exists()  # the runner is alive: nothing interrupted

    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()

    kernel.wait(timeout=5)  # not our child: its exit code is not ours to read
    assert not kernel.is_running()
    assert marker.read_text() == "interrupted"
