"""``make demo``: start the local stack, run the daily jobs for a few days, print what landed."""

from __future__ import annotations

import secrets
import time
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from medallion import compute
from medallion.bundle import load_bundle
from medallion.devstack import stack
from medallion.jobs import JobRunResult, RunOptions, run_job
from medallion.jobs.model import parse_job
from medallion.jobs.progress import ConsoleProgress
from medallion.lakehouse import discover_tables

DAILY_JOBS = ("ingest_daily_sources", "build_analytics")
DEMO_SERVICES = ("fx_api",)  # the sources the daily jobs read today


def table_counts(storage_root: Path) -> list[tuple[str, int]]:
    """Every table under the storage root with its row count, via the warm server."""
    from pyspark.sql import SparkSession

    server = compute.find_server(storage_root)
    if server is None:
        return []
    spark = SparkSession.builder.remote(server.url).getOrCreate()
    counts = []
    for table in discover_tables(storage_root):
        counts.append((table, int(spark.table(table).count())))
    spark.stop()
    return counts


def _summary(console: Console, results: list[JobRunResult], counts: list[tuple[str, int]],
             wall_seconds: float) -> None:
    runs = Table("job", "run_date", "state", "seconds", "notebooks", title="Job runs",
                 title_justify="left")
    for result in results:
        runs.add_row(result.job_key, result.parameters.get("run_date", ""), result.state,
                     f"{result.duration_seconds:.1f}", str(result.run_dir))
    console.print(runs)
    tables = Table("layer", "table", "rows", title="Tables", title_justify="left")
    for table, rows in counts:
        tables.add_row(table.split(".")[0], table, str(rows))
    console.print(tables)
    console.print(f"demo wall time: {wall_seconds:.1f}s · look around with "
                  "`.venv/bin/medallion sql \"SELECT * FROM gold.fx_daily_change\"`")


def run_demo(bundle_root: Path, run_dates: list[date], console: Console) -> int:
    """Run the daily jobs for each date; return 0 when every run succeeded."""
    started = time.monotonic()
    bundle = load_bundle(bundle_root)
    storage_root = Path(str(bundle.variables["storage_root"])).resolve()
    console.print(f"[bold]medallion demo[/bold]: {len(run_dates)} day(s), lakehouse at "
                  f"{storage_root}")
    for service in stack.up(storage_root, DEMO_SERVICES):
        console.print(f"  source stand-in {service.name}: {service.url}")
    lease = f"demo-{secrets.token_hex(4)}"
    server = compute.acquire_server(storage_root, lease)
    console.print(f"  warm Spark Connect server: {server.url}")
    results: list[JobRunResult] = []
    try:
        options = RunOptions(runs_root=bundle_root / "runs", observer=ConsoleProgress(console))
        for run_date in run_dates:
            for job_key in DAILY_JOBS:
                job = parse_job(job_key, bundle.jobs[job_key])
                result = run_job(job, {"run_date": run_date.isoformat()}, options)
                results.append(result)
                if result.exit_code:
                    console.print(f"[red]{result.failure_message()}[/red]")
                    return result.exit_code
        counts = table_counts(storage_root)
    finally:
        compute.release_server(storage_root, lease)
        stack.down(storage_root, DEMO_SERVICES)
    _summary(console, results, counts, time.monotonic() - started)
    return 0
