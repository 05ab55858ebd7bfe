"""``make demo``: generate data, start the five sources, run the daily jobs day by day, report.

Each business day the source systems advance first (``load_day``: Snowflake's snapshot, the day's
PostgreSQL events and Kafka messages, CRM upserts), then ``ingest_daily_sources`` and
``build_analytics`` run for that day, as a scheduler would run them after midnight.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from medallion.lakehouse.quality.event_log import DQ_EVENT_LOG
from medallion.lakehouse.quality.report import PassRate, RuleCount, pass_rates, quarantine_counts
from medallion.lakehouse.runtime import read_task_values
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import discover_tables, register_tables
from medallion.platform import compute
from medallion.platform.bundle import load_bundle
from medallion.platform.devstack import stack
from medallion.platform.devstack.memory import PeakMemory
from medallion.platform.devstack.service import read_info
from medallion.platform.generate import GeneratorConfig, generate, write_generated
from medallion.platform.generate.load import load_day
from medallion.platform.jobs import JobRunResult, RunOptions, run_job
from medallion.platform.jobs.engine import ObserverGroup, run_records
from medallion.platform.jobs.kernels import KernelPool
from medallion.platform.jobs.model import parse_job
from medallion.platform.jobs.progress import ConsoleProgress
from medallion.platform.runs.recorder import RunRecorder

INGEST_JOB = "ingest_daily_sources"
BUILD_JOB = "build_analytics"
WATCHDOG_JOB = "dq_watchdog"
WATCHDOG_TASK = "watch_tables"
LINEAGE_TABLE = "gold.fact_customer_360"
PUBLISH_TASKS = ("publish_snowflake", "publish_redshift")
INGEST_LOOPS = {
    "ingest_snowflake_orders": "snowflake/orders",
    "ingest_redshift_behavior": "redshift/behavior",
    "ingest_crm_accounts": "crm/accounts",
    "ingest_kafka_orders": "kafka/orders",
    "ingest_fx_rates": "fx_rates",
}
MIB = 1024 * 1024
MAX_PARALLEL = 5  # the five bronze loads of a day run at once
REPORT_QUERIES_AT_ONCE = 4


@dataclass(frozen=True)
class SourceDay:
    """What one source landed for one day, from its ingest task's values."""

    source: str
    run_date: str
    rows: int
    rows_per_second: float


@dataclass(frozen=True)
class LakehouseReport:
    """Row counts per table, quarantined rows per rule, DQ pass rates per dataset."""

    counts: list[tuple[str, int]]
    quarantined: list[RuleCount]
    pass_rates: list[PassRate]


def lakehouse_report(storage_root: StorageRoot) -> LakehouseReport:
    """Every table under the storage root with its row count and the DQ outcome, via the server."""
    from pyspark.sql import SparkSession

    server = compute.find_server(storage_root)
    if server is None:
        return LakehouseReport([], [], [])
    spark = SparkSession.builder.remote(server.url).getOrCreate()
    try:
        tables = discover_tables(storage_root)
        register_tables(spark, storage_root)
        # Each query is mostly the server's planning and Delta log lookups on one core; several
        # in flight use both (a demo's 27 tables: 0.6x the time of one query at a time).
        with ThreadPoolExecutor(REPORT_QUERIES_AT_ONCE, thread_name_prefix="report") as pool:
            counts = pool.map(lambda table: (table, int(spark.table(table).count())), tables)
            quarantined = pool.map(lambda table: quarantine_counts(spark, [table]), tables)
            rates = pool.submit(pass_rates, spark) if DQ_EVENT_LOG in tables else None
            return LakehouseReport(list(counts), [count for per_table in quarantined
                                                  for count in per_table],
                                   rates.result() if rates else [])
    finally:
        spark.stop()


def ingested(result: JobRunResult) -> list[SourceDay]:
    """Rows and rows/s of each source in an ``ingest_daily_sources`` run (last iteration)."""
    days = []
    for loop, source in INGEST_LOOPS.items():
        values = read_task_values(result.run_dir, f"{loop}_day")
        if values:
            days.append(SourceDay(source, result.parameters.get("run_date", ""),
                                  int(values["rows_landed"]), float(values["rows_per_second"])))
    return days


def stack_pids(storage_root: StorageRoot) -> list[int]:
    """The processes of the running source stand-ins."""
    infos = (read_info(storage_root, name) for name in stack.SERVICES)
    return [info.pid for info in infos if info is not None]


def _summary(console: Console, results: list[JobRunResult], sources: list[SourceDay],
             report: LakehouseReport, facts: dict[str, Any]) -> None:
    runs = Table("job", "run_date", "state", "seconds", "notebooks", title="Job runs",
                 title_justify="left")
    for result in sorted(results, key=lambda r: r.started_at):
        runs.add_row(result.job_key, result.parameters.get("run_date", ""), result.state,
                     f"{result.duration_seconds:.1f}", str(result.run_dir))
    console.print(runs)
    landed = Table("source", "run_date", "rows landed", "rows/s", title="Raw zone, per source",
                   title_justify="left")
    for day in sources:
        landed.add_row(day.source, day.run_date, str(day.rows), f"{day.rows_per_second:,.0f}")
    console.print(landed)
    tables = Table("layer", "table", "rows", title="Tables", title_justify="left")
    for table, rows in report.counts:
        tables.add_row(table.split(".")[0], table, f"{rows:,}")
    console.print(tables)
    rules = Table("quarantine table", "rule", "rows", title="Quarantined rows, per rule",
                  title_justify="left")
    for count in report.quarantined:
        rules.add_row(count.table, count.rule, f"{count.rows:,}")
    console.print(rules)
    rates = Table("dataset", "checks", "rows checked", "passed every rule", "pass rate",
                  "failing rules (rows)", title="DQ pass rates (ops.dq_event_log)",
                  title_justify="left")
    for rate in report.pass_rates:
        rates.add_row(rate.dataset, str(rate.checks), f"{rate.rows_checked:,}",
                      f"{rate.rows_passed:,}", f"{rate.pass_rate:.2%}",
                      ", ".join(f"{rule} {rows:,}" for rule, rows in rate.failing_rules) or "-")
    console.print(rates)
    published = Table("build run_date", "warehouse", "target", "gold version", "published",
                      "rows/s", "rows", "distinct customers", "sum lifetime_value_usd",
                      title="Published to the warehouses (figures equal to gold's)",
                      title_justify="left")
    for run_date, values in publishes(results):
        figures = values["warehouse_figures"]
        published.add_row(
            run_date, values["warehouse"], values["target"], str(values["gold_version"]),
            "no (version already held)" if values["skipped"] else
            f"+{values['inserted']:,} ~{values['updated']:,} -{values['deleted']:,}",
            "-" if values["skipped"] else f"{values['rows_per_second']:,.0f}",
            f"{figures['rows']:,}", f"{figures['distinct_keys']:,}",
            figures["sums"]["lifetime_value_usd"],
        )
    console.print(published)
    console.print(
        f"demo wall time {facts['wall_seconds']:.1f}s (data generated in "
        f"{facts['generate_seconds']:.1f}s, stand-ins up in {facts['stack_seconds']:.1f}s); "
        f"source stand-ins peaked at {facts['stack_peak_mib']:,.0f} MiB resident (PSS), everything "
        f"(with Spark and the notebook kernels) at {facts['total_peak_mib']:,.0f} MiB"
    )
    console.print("look around: `.venv/bin/medallion sql \"SELECT * FROM gold.fx_daily_change\"`, "
                  "`.venv/bin/medallion state show`")


def run_demo(bundle_root: Path, run_dates: list[date], console: Console, *,
             scale: float = 1.0, seed: int = 42, keep_stack: bool = False) -> int:
    """Generate, start the stand-ins, run the daily jobs for each date; 0 when all succeeded."""
    started = time.monotonic()
    bundle = load_bundle(bundle_root)
    storage_root = StorageRoot(str(bundle.variables["storage_root"]))
    console.print(f"[bold]medallion demo[/bold]: {len(run_dates)} day(s) from "
                  f"{run_dates[0]} at scale {scale}, lakehouse at {storage_root}")
    lease = f"demo-{secrets.token_hex(4)}"
    # The warm Spark server's JVM starts while the data is generated and the stand-ins come up.
    starting = ThreadPoolExecutor(1, thread_name_prefix="spark-server")
    server_started = starting.submit(compute.acquire_server, storage_root, lease)
    starting.shutdown(wait=False)
    kernels: KernelPool | None = None
    try:
        data = generate(GeneratorConfig(seed=seed, scale=scale, days=len(run_dates),
                                        start_date=run_dates[0]))
        write_generated(data, storage_root.system / "generate" / "data")
        generated = time.monotonic()
        for service in stack.up(storage_root):
            console.print(f"  source {service.name}: {service.url}")
        stack_ready = time.monotonic()
        server = server_started.result()
        console.print(f"  warm Spark Connect server: {server.url}")
        results: list[JobRunResult] = []
        sources: list[SourceDay] = []
        runs_root = bundle_root / "runs"
        runs_root.mkdir(parents=True, exist_ok=True)
        # One set of kernels for every run of the demo, as a cluster keeps its Python warm
        # between job runs: the imports a day's tasks paid are not paid again the next day.
        kernels = KernelPool({"SPARK_REMOTE": server.url}, runs_root, size=MAX_PARALLEL,
                             limit=MAX_PARALLEL)
        jobs = {key: parse_job(key, raw) for key, raw in bundle.jobs.items()}
        recorder = RunRecorder.for_bundle(bundle)
        options = RunOptions(runs_root=runs_root, max_parallel=MAX_PARALLEL,
                             observer=ObserverGroup(ConsoleProgress(console), recorder),
                             jobs=jobs, kernels=kernels)
        memory = PeakMemory({
            "stack": lambda: stack_pids(storage_root),
            "everything": lambda: [*stack_pids(storage_root), server.pid, os.getpid()],
        })
        with memory:
            for run_date in run_dates:
                report = load_day(storage_root, data, run_date)
                console.print(f"[bold]{run_date}[/bold]: sources advanced ("
                              + ", ".join(f"{s.system} {s.rows}" for s in report.systems) + ")")
                # ingest_daily_sources runs build_analytics for the day itself (run_job_task).
                result = run_job(jobs[INGEST_JOB], {"run_date": run_date.isoformat()}, options)
                results.append(result)
                sources.extend(ingested(result))
                if result.exit_code:
                    console.print(f"[red]{result.failure_message()}[/red]")
                    return result.exit_code
            # What the hourly watchdog would say now: freshness, volume, silver and gold suites.
            watchdog = run_job(jobs[WATCHDOG_JOB], {"run_date": run_dates[-1].isoformat()},
                               options)
            results.append(watchdog)
        summary = lakehouse_report(storage_root)
    finally:
        if kernels is not None:
            kernels.close()
        with contextlib.suppress(Exception):  # its failure, if any, is the one being raised
            server_started.result()
        compute.release_server(storage_root, lease)
        if not keep_stack:
            stack.down(storage_root)
    facts = {
        "wall_seconds": time.monotonic() - started,
        "generate_seconds": generated - started,
        "stack_seconds": stack_ready - generated,
        "stack_peak_mib": memory.peaks["stack"] / MIB,
        "total_peak_mib": memory.peaks["everything"] / MIB,
    }
    _summary(console, [*results, *child_runs(bundle_root / "runs", results)], sources, summary,
             facts)
    _watchdog_summary(console, watchdog)
    _lineage_picture(console, storage_root)
    _reports(console, recorder, results)
    return watchdog.exit_code


def _reports(console: Console, recorder: RunRecorder, results: list[JobRunResult]) -> None:
    """Name the last day's run report (it links its build run's) and the watchdog's."""
    for result in results[-2:]:
        path = recorder.reports.get(result.run_id)
        if path is not None:
            console.print(f"report of {result.job_key} {result.parameters.get('run_date', '')}: "
                          f"{path}", markup=False)


def _lineage_picture(console: Console, storage_root: StorageRoot) -> None:
    """Draw gold.fact_customer_360's upstream lineage beside the events it comes from."""
    from medallion.lakehouse.lineage.graph import read_lineage
    from medallion.lakehouse.lineage.picture import write_picture

    graph, _ = read_lineage(storage_root)
    dataset = graph.find(LINEAGE_TABLE)
    path = storage_root / "_lineage" / f"{LINEAGE_TABLE}.svg"
    write_picture(graph.upstream(dataset), dataset, path)
    console.print(f"lineage of {LINEAGE_TABLE}: {path} (`.venv/bin/medallion lineage show "
                  f"{LINEAGE_TABLE}` prints it); run records: `.venv/bin/mlflow ui "
                  f"--backend-store-uri sqlite:///{storage_root}/_system/mlflow/mlflow.db`")


def _watchdog_summary(console: Console, result: JobRunResult) -> None:
    """The watchdog's checks per kind, or the breaches it alerted on."""
    by_kind = read_task_values(result.run_dir, WATCHDOG_TASK).get("by_kind") or {}
    checks = Table("check", "passed", "failed", "warned", "skipped",
                   title=f"DQ watchdog ({result.state}; every check in ops.dq_event_log)",
                   title_justify="left")
    for kind, counts in sorted(by_kind.items()):
        checks.add_row(kind, *(str(counts.get(status, 0))
                               for status in ("passed", "failed", "warned", "skipped")))
    console.print(checks)
    if result.exit_code:
        console.print(f"[red]{result.failure_message()}[/red]")


def publishes(results: list[JobRunResult]) -> list[tuple[str, dict[str, Any]]]:
    """(run_date, publish task values) of every publish task of the build runs, in run order."""
    found = []
    for result in sorted(results, key=lambda r: r.started_at):
        if result.job_key != BUILD_JOB:
            continue
        for task in PUBLISH_TASKS:
            values = read_task_values(result.run_dir, task)
            if values:
                found.append((result.parameters.get("run_date", ""), values))
    return found


def child_runs(runs_root: Path, parents: list[JobRunResult]) -> list[JobRunResult]:
    """The build_analytics runs the ingest runs started, from their run records."""
    found = []
    for parent in parents:
        loop = parent.tasks.get(BUILD_JOB)
        for record in run_records(runs_root / BUILD_JOB):
            content = json.loads(record.read_text())
            if loop and loop.state == "SUCCESS" and parent.started_at <= content["started_at"] \
                    <= parent.ended_at:
                found.append(JobRunResult(
                    BUILD_JOB, content["run_id"], record.parent, content["state"], {},
                    float(content["duration_seconds"]), dict(content["parameters"]),
                    content["started_at"], content["ended_at"],
                ))
    return found
