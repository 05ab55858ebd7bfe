"""The kernel pool: a task gets a kernel that ran its notebook before; runs can share one pool."""

from __future__ import annotations

from pathlib import Path

from medallion.platform.bundle import load_bundle
from medallion.platform.jobs import RunOptions, run_job
from medallion.platform.jobs.kernels import KernelPool
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
