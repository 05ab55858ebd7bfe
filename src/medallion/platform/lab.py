"""``make lab``: JupyterLab on the notebooks, every kernel attached to the warm driver.

A notebook's first cell takes seconds instead of a Spark start: the lab runs with
``SPARK_REMOTE`` set to the storage root's warm Spark Connect server (``medallion compute up``),
which every kernel inherits, and installs a kernel named ``medallion`` into this environment
that carries the same setting, so a notebook opened on that kernel attaches the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medallion.lakehouse.storage import StorageRoot
from medallion.platform import compute

KERNEL_NAME = "medallion"


def kernel_spec(spark_remote: str) -> dict[str, Any]:
    """The ``medallion`` kernel: this environment's Python, attached to ``spark_remote``."""
    return {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "medallion (warm Spark)",
        "language": "python",
        "env": {"SPARK_REMOTE": spark_remote, "PYARROW_IGNORE_TIMEZONE": "1"},
        "metadata": {"debugger": True},
    }


def install_kernel(spark_remote: str, prefix: Path = Path(sys.prefix)) -> Path:
    """Write the kernel spec under ``<prefix>/share/jupyter/kernels`` (where Jupyter in this
    environment looks); its path."""
    folder = prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kernel.json"
    path.write_text(json.dumps(kernel_spec(spark_remote), indent=2) + "\n", encoding="utf-8")
    return path


def lab_command(notebook_dir: Path, port: int, open_browser: bool) -> list[str]:
    """The JupyterLab server's command line: the notebooks folder, the medallion kernel first."""
    command = [
        sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={notebook_dir}",
        f"--ServerApp.port={port}", f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}",
    ]
    if os.geteuid() == 0:  # containers and CI machines often run as root, which Jupyter refuses
        command.append("--ServerApp.allow_root=True")
    return [*command, "--ServerApp.open_browser=False"] if not open_browser else command


def run_lab(
    storage_root: StorageRoot,
    notebook_dir: Path,
    port: int,
    open_browser: bool,
    announce: Callable[[str], None] = lambda line: None,
) -> int:
    """Start the warm driver for ``storage_root``, then JupyterLab until it stops (Ctrl-C).

    The driver stays pinned while the lab runs and is released after, so it stops once no job
    run uses it either.
    """
    server = compute.pin_server(storage_root)
    try:
        install_kernel(server.url)
        environment = {**os.environ, "SPARK_REMOTE": server.url}
        announce(f"warm driver {server.url} for {storage_root}; kernel {KERNEL_NAME!r}")
        return subprocess.call(lab_command(notebook_dir, port, open_browser), env=environment)
    except KeyboardInterrupt:
        return 0
    finally:
        compute.unpin_server(storage_root)
