"""`make lab`: JupyterLab with the project's kernel, attached to the warm driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.storage import StorageRoot
from medallion.platform import compute
from medallion.platform.lab import KERNEL_NAME, install_kernel

TOKEN = "lab-test-token"


def test_jupyter_finds_the_medallion_kernel_and_its_spark_remote(tmp_path: Path) -> None:
    install_kernel("sc://127.0.0.1:15999", prefix=tmp_path)

    listed = subprocess.run(
        [sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter")},
    )

    spec = json.loads(listed.stdout)["kernelspecs"][KERNEL_NAME]["spec"]
    assert spec["env"]["SPARK_REMOTE"] == "sc://127.0.0.1:15999"
    assert spec["argv"][:3] == [sys.executable, "-m", "ipykernel_launcher"]


def test_medallion_lab_serves_the_notebooks_with_the_medallion_kernel_on_the_warm_driver(
    tmp_path: Path,
) -> None:
    root, port = tmp_path / "lakehouse", compute.free_port()
    lab = subprocess.Popen(
        [sys.executable, "-m", "medallion", "lab", "--no-browser", "--port", str(port),
         "--storage-root", str(root), "--bundle-root", str(repo_root())],
        env={**os.environ, "JUPYTER_TOKEN": TOKEN}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        specs = _get(f"http://127.0.0.1:{port}/api/kernelspecs?token={TOKEN}", timeout=180)
        contents = _get(f"http://127.0.0.1:{port}/api/contents/explore?token={TOKEN}", 10)
        server = compute.find_server(StorageRoot(root))
    finally:
        os.killpg(lab.pid, signal.SIGINT)
        output = lab.communicate(timeout=60)[0]

    assert specs["default"] == KERNEL_NAME, output
    assert server is not None
    assert specs["kernelspecs"][KERNEL_NAME]["spec"]["env"]["SPARK_REMOTE"] == server.url
    assert [item["name"] for item in contents["content"]] == ["explore_gold.ipynb"]
    assert f"warm driver {server.url} for {root}" in output
    deadline = time.monotonic() + 60  # released when the lab stops, so the driver stops too
    while compute.find_server(StorageRoot(root)) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert compute.find_server(StorageRoot(root)) is None


def _get(url: str, timeout: float) -> dict:  # type: ignore[type-arg]
    """GET a JSON document, waiting up to ``timeout`` seconds for the server to answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
