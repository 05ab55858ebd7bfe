"""Per-task overhead of the local runner: warm driver vs one Spark start per notebook.

Runs the same 10-task chain of no-op notebooks (each attaches to Spark and runs one tiny query)
in one process, side by side:

- cold: a fresh kernel per task, each starting its own local Spark (what papermill alone gives);
- warm, no pool: one shared Spark Connect server, a fresh kernel started per task on demand;
- warm: the shared server and kernels started ahead, already warmed with imports (the default).

The server's own start is reported separately: a run pays it once, and `medallion compute up`
keeps it across runs. Usage: `make bench` (or `python -m benchmarks.runner_overhead --tasks 10`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat

from medallion.lakehouse.storage import StorageRoot
from medallion.platform import compute
from medallion.platform.jobs import JobSpec, RunOptions, TaskSpec, run_job
from medallion.platform.jobs.model import Dependency

NOOP_SOURCE = (
    "from medallion.lakehouse.spark import get_spark\n"
    "from medallion.lakehouse.storage import StorageRoot\n\n"
    "spark = get_spark(StorageRoot(storage_root))\n"
    "spark.range(1).count()"
)


def write_noop_notebook(path: Path) -> Path:
    """A notebook that attaches to Spark and runs one trivial query."""
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('storage_root = ""')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell("# no-op"), parameters,
                      nbformat.v4.new_code_cell(NOOP_SOURCE)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, path)
    return path


def chain_job(notebook: Path, tasks: int, storage_root: Path) -> JobSpec:
    """``tasks`` no-op notebook tasks, each depending on the previous one."""
    specs = tuple(
        TaskSpec(task_key=f"t{i:02d}", notebook_path=notebook,
                 depends_on=(Dependency(f"t{i - 1:02d}"),) if i else ())
        for i in range(tasks)
    )
    return JobSpec(key="noop_chain", name="noop_chain", tasks=specs,
                   parameters={"storage_root": str(storage_root)})


def measure(job: JobSpec, runs_root: Path, compute_mode: str, kernel_pool: int) -> float:
    """Wall seconds of one run; raises if any task failed."""
    started = time.monotonic()
    result = run_job(job, {}, RunOptions(runs_root=runs_root, compute=compute_mode,
                                         kernel_pool=kernel_pool, max_parallel=1))
    if result.exit_code:
        raise SystemExit(result.failure_message())
    return time.monotonic() - started


def main() -> None:
    """Run every mode once and print seconds per task and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medallion-bench-") as tmp:
        workdir = Path(tmp)
        storage_root = workdir / "lakehouse"
        job = chain_job(write_noop_notebook(workdir / "noop.ipynb"), args.tasks, storage_root)
        runs_root = workdir / "runs"

        started = time.monotonic()
        compute.pin_server(StorageRoot(storage_root))
        server_start = time.monotonic() - started
        try:
            warm = measure(job, runs_root, "warm", kernel_pool=2)
            warm_no_pool = measure(job, runs_root, "warm", kernel_pool=0)
        finally:
            compute.unpin_server(StorageRoot(storage_root))
        cold = measure(job, runs_root, "cold", kernel_pool=0)

    n = args.tasks
    print(f"\nrunner overhead, {n}-task chain of no-op notebooks (seconds per task)")
    print(f"  {'mode':<40}{'s/task':>8}{'vs cold':>9}")
    for label, seconds in [
        ("cold: own kernel + own Spark per task", cold),
        ("warm driver, kernel started per task", warm_no_pool),
        ("warm driver + pre-started kernels", warm),
    ]:
        print(f"  {label:<40}{seconds / n:>8.2f}{cold / seconds:>8.1f}x")
    print(f"  (warm driver start, paid once per storage root: {server_start:.1f} s)")


if __name__ == "__main__":
    main()
