"""The kernel pool: a task gets a kernel that ran its notebook before; runs can share one pool."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyter_core.utils import run_sync

from medallion.platform.bundle import load_bundle
from medallion.platform.jobs import RunOptions, run_job
from medallion.platform.jobs.kernels import KernelPool, PromptClient
from medallion.platform.jobs.model import parse_job
from tests.platform.jobs.conftest import FIXTURE_BUNDLE, markers


def test_a_task_gets_the_kernel_that_ran_its_notebook_else_the_least_used(tmp_path: Path) -> None:
    pool = KernelPool({}, tmp_path, size=2)
    try:
        first, second = pool.acquire(Path("a.ipynb")), pool.acquire(Path("b.ipynb"))
        for kernel in (first, second):
            pool.release(kernel, reusable=True)

        again = pool.acquire(Path("b.ipynb"))
        assert again is second
        other = pool.acquire(Path("c.ipynb"))  # no kernel ran c: the one that ran fewer
        assert other is first
        pool.release(other, reusable=True)
        pool.release(again, reusable=True)

        assert pool.acquire(Path("d.ipynb")) is second  # first ran a and c, second only b
    finally:
        pool.close()


def test_runs_given_one_pool_run_their_notebooks_in_its_kernels(
    tmp_path: Path, marker_dir: Path
) -> None:
    bundle = load_bundle(FIXTURE_BUNDLE)
    jobs = {key: parse_job(key, raw) for key, raw in bundle.jobs.items()}
    pool = KernelPool({}, tmp_path, size=1)
    options = RunOptions(runs_root=tmp_path / "runs", compute="cold", kernel_pool=1,
                         jobs=jobs, kernels=pool)
    try:
        for label in ("day_1", "day_2"):
            result = run_job(jobs["params_job"], {"marker_dir": str(marker_dir),
                                                  "label": label}, options)
            assert result.exit_code == 0, result.failure_message()
    finally:
        pool.close()

    recorded = markers(marker_dir)
    assert recorded["day_1"]["pid"] == recorded["day_2"]["pid"]


def test_setup_code_runs_in_the_kernel_and_its_error_is_named(tmp_path: Path) -> None:
    pool = KernelPool({}, tmp_path, size=1)
    try:
        kernel = pool.acquire(Path("a.ipynb"))
        marker = tmp_path / "marker.txt"
        for word in ("first", "second"):  # the same connection serves every setup
            kernel.execute_silently(f"open({str(marker)!r}, 'a').write({word!r})")
        assert marker.read_text() == "firstsecond"

        with pytest.raises(RuntimeError, match=r"^kernel setup failed: ValueError: no such"):
            kernel.execute_silently("raise ValueError('no such thing')")
        pool.release(kernel, reusable=True)
    finally:
        pool.close()


def test_a_killed_kernel_refuses_setup_and_is_not_handed_out_again(tmp_path: Path) -> None:
    pool = KernelPool({}, tmp_path, size=1)
    try:
        kernel = pool.acquire(Path("a.ipynb"))
        kernel.kill()
        with pytest.raises(RuntimeError, match=r"^kernel setup failed: the kernel is not running$"):
            kernel.execute_silently("1")

        pool.release(kernel, reusable=True)  # its reset fails: retired, a new one started

        assert pool.acquire(Path("a.ipynb")) is not kernel
    finally:
        pool.close()


def test_papermills_client_is_ready_with_its_output_channel_connected(tmp_path: Path) -> None:
    """The client nbclient gets from a pooled kernel's manager stops waiting as soon as the
    kernel answers, and not before its output channel is connected: the first cell's output
    arrives on it."""
    pool = KernelPool({}, tmp_path, size=1)
    try:
        kernel = pool.acquire(Path("a.ipynb"))
        client = kernel.manager.client()
        assert isinstance(client, PromptClient)
        client.start_channels()
        try:
            run_sync(client.wait_for_ready)(timeout=60)
            request = client.execute("print('hello from the cell')")
            streamed = []
            while True:
                message = run_sync(client.get_iopub_msg)(timeout=30)
                if message["parent_header"].get("msg_id") != request:
                    continue
                if message["msg_type"] == "stream":
                    streamed.append(message["content"]["text"])
                if (message["msg_type"] == "status"
                        and message["content"]["execution_state"] == "idle"):
                    break
        finally:
            client.stop_channels()
        assert streamed == ["hello from the cell\n"]
        pool.release(kernel, reusable=True)
    finally:
        pool.close()
