"""What lineage, run summaries and MLflow cost a ``build_analytics`` run, side by side.

One generated day is ingested (which builds it once, warming every cache), then
``build_analytics`` for that day runs again and again with ``full_refresh=true`` (the same work
each time), alternating:

- on: lineage events (file transport), the run summary and its DQ report, the MLflow run with a
  nested run per task and the artifacts (what ``medallion jobs run`` does);
- off: ``MEDALLION_LINEAGE=off`` and no run recorder.

The DQ mirror the summary reads (a few JSON lines per task) is written in both. Each mode's best
and median wall time are reported, and the overhead as a share of the "off" time. Usage:
``make bench`` (or ``python -m benchmarks.observability_overhead --scale 0.05 --repeat 3``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from medallion.lakehouse.lineage.transport import ENABLED_ENV
from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.storage import StorageRoot
from medallion.platform import compute
from medallion.platform.bundle import load_bundle
from medallion.platform.devstack import stack
from medallion.platform.generate import GeneratorConfig, generate
from medallion.platform.generate.load import load_day
from medallion.platform.jobs import RunOptions, run_job
from medallion.platform.jobs.engine import RunObserver
from medallion.platform.jobs.model import parse_job
from medallion.platform.runs.recorder import RunRecorder

DAY = date(2026, 11, 2)


def run_once(root: Path, runs_root: Path, *, observed: bool) -> float:
    """Wall seconds of one full-refresh ``build_analytics`` run; raises if it failed."""
    bundle = load_bundle(repo_root(), variables={"storage_root": str(root)})
    jobs = {key: parse_job(key, raw) for key, raw in bundle.jobs.items()}
    observer = RunRecorder.for_bundle(bundle) if observed else RunObserver()
    if observed:
        os.environ.pop(ENABLED_ENV, None)
    else:
        os.environ[ENABLED_ENV] = "off"
    options = RunOptions(runs_root=runs_root, max_parallel=5, observer=observer, jobs=jobs)
    started = time.monotonic()
    result = run_job(jobs["build_analytics"],
                     {"run_date": DAY.isoformat(), "full_refresh": "true"}, options)
    seconds = time.monotonic() - started
    os.environ.pop(ENABLED_ENV, None)
    if result.exit_code:
        raise SystemExit(result.failure_message())
    return seconds


def main() -> None:
    """Prepare one day, then alternate observed and bare runs; print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medallion-bench-obs-") as tmp:
        root, runs_root = Path(tmp) / "lakehouse", Path(tmp) / "runs"
        data = generate(GeneratorConfig(seed=42, scale=args.scale, days=1, start_date=DAY))
        stack.up(StorageRoot(root))
        compute.pin_server(StorageRoot(root))
        try:
            load_day(StorageRoot(root), data, DAY)
            bundle = load_bundle(repo_root(), variables={"storage_root": str(root)})
            jobs = {key: parse_job(key, raw) for key, raw in bundle.jobs.items()}
            ingest = run_job(jobs["ingest_daily_sources"], {"run_date": DAY.isoformat()},
                             RunOptions(runs_root=runs_root, max_parallel=5, jobs=jobs))
            if ingest.exit_code:
                raise SystemExit(ingest.failure_message())
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(args.repeat):
                for observed in (True, False):
                    times[observed].append(run_once(root, runs_root, observed=observed))
        finally:
            compute.unpin_server(StorageRoot(root))
            stack.down(StorageRoot(root))

    on, off = times[True], times[False]
    print(f"\nobservability overhead on build_analytics (scale {args.scale}, one day, "
          f"full refresh, {args.repeat} runs per mode, alternating)")
    print(f"  {'mode':<46}{'best s':>8}{'median s':>10}")
    print(f"  {'off: no lineage, no summary, no MLflow':<46}{min(off):>8.1f}"
          f"{statistics.median(off):>10.1f}")
    print(f"  {'on: lineage + run summary + MLflow':<46}{min(on):>8.1f}"
          f"{statistics.median(on):>10.1f}")
    print(f"  overhead: best {min(on) / min(off) - 1:+.1%}, median "
          f"{statistics.median(on) / statistics.median(off) - 1:+.1%}")


if __name__ == "__main__":
    main()
