"""Where a small day's ``build_analytics`` spends its time, and what bare PySpark needs for it.

In a temporary storage root: generated demo-scale data (``--scale 1.0``: ~1,000 customers, a few
thousand orders and ~7k behavior events a day), the five source stand-ins, and one warm Spark
Connect server kept up for the whole benchmark (``compute.pin_server``), which writes Spark's
event log (``MEDALLION_SPARK_EVENT_LOG_DIR``). Day by day, as ``make demo`` does, the sources
advance (``load_day``) and ``ingest_daily_sources`` runs for the day, which runs
``build_analytics`` for it as a child job. Day 1 is the first day (tables created, caches cold);
day 2 on are warm days, the figure that matters.

For each day's ``build_analytics`` run it prints, per task: when it started and its seconds (the
run's ``run.json``; "nb s" is the notebook's own execution, the rest is the runner's), the Spark
jobs it started and the seconds at least one of them ran (the event log, by the task's job tag),
and the Delta commits it made (each table's ``_delta_log``, by the commit's ``userMetadata``),
then totals. Every session inside a job run is labelled ``<job>/<run_id>/<task_key>``
(``medallion.lakehouse.spark.label_for_task``); jobs during the run that carry no label are
counted apart. Last, where the machine's CPU went while the build ran, in core-seconds
(``benchmarks/machine_cpu.py``): the warm Spark server, with its JIT compiler and GC threads
apart, the notebook kernels, the runner, the rest, and what stayed idle. On 2 cores a warm day is
bound by CPU: the cores are busy all day, so any task's queries, on the critical path or not,
delay it.

Then the bare PySpark baseline (``benchmarks/bare_day.py``): a fresh storage root with a copy of
the raw zone the ingest runs landed, one session on the same warm server, the same transforms and
Delta writes raw → bronze → silver → gold for the same days and nothing else; its seconds per
layer, and job / bare: the framework's overhead.

Wall clock, one run, on a machine that may be shared (the load average is printed); nothing is
asserted about times. Usage: ``make bench`` or ``python -m benchmarks.small_day --scale 0.2
--days 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from benchmarks.bare_day import LABEL_PREFIX, LAYERS, Specs, run_bare_day
from benchmarks.machine_cpu import GC, IDLE, JIT, CpuReading, CpuSampler, cpu_between
from benchmarks.scratch import scratch
from benchmarks.spark_accounting import (
    Commit,
    SparkJob,
    busy_seconds,
    by_label,
    describe_commits,
    read_commits,
    read_event_log_jobs,
    untagged,
)
from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.spark import EVENT_LOG_DIR_ENV
from medallion.lakehouse.storage import StorageRoot
from medallion.platform import compute
from medallion.platform.bundle import load_bundle
from medallion.platform.devstack import stack
from medallion.platform.generate import GeneratedData, GeneratorConfig, generate
from medallion.platform.generate.load import load_day
from medallion.platform.jobs import JobSpec, RunOptions, run_job
from medallion.platform.jobs.kernels import KernelPool
from medallion.platform.jobs.model import parse_job
from medallion.platform.runs.recorder import RunRecorder

START = date(2026, 11, 2)
INGEST_JOB = "ingest_daily_sources"
BUILD_JOB = "build_analytics"
FIRST_DAY_TARGET, WARM_DAY_TARGET = 60, 30


@dataclass(frozen=True)
class TaskTimes:
    """One task of a build run: state, seconds in the runner, and its notebook's own span."""

    key: str
    state: str
    seconds: float
    started: datetime | None  # the notebook's execution (papermill), None for condition tasks
    notebook_seconds: float | None


@dataclass(frozen=True)
class BuildRun:
    """One ``build_analytics`` run, from its ``run.json`` and executed notebooks."""

    day: date
    run_id: str
    seconds: float
    started: datetime
    ended: datetime
    tasks: tuple[TaskTimes, ...]

    @property
    def label_prefix(self) -> str:
        """What its sessions' labels start with."""
        return f"{BUILD_JOB}/{self.run_id}/"


def read_build_run(runs_root: Path, day: date) -> BuildRun:
    """The build run of ``day`` under ``runs_root`` (there is one per day in a fresh root)."""
    for record in sorted((runs_root / BUILD_JOB).glob("*/run.json")):
        run = json.loads(record.read_text())
        if run["parameters"].get("run_date") == day.isoformat():
            tasks = tuple(_task_times(record.parent, task) for task in run["tasks"])
            return BuildRun(
                day, run["run_id"], float(run["duration_seconds"]),
                datetime.fromisoformat(run["started_at"]), datetime.fromisoformat(run["ended_at"]),
                tasks,
            )
    raise SystemExit(f"no {BUILD_JOB} run for {day} under {runs_root}")


def _task_times(run_dir: Path, task: dict[str, Any]) -> TaskTimes:
    notebook = run_dir / f"{task['task_key']}.ipynb"
    started, seconds = None, None
    if notebook.is_file():
        papermill = json.loads(notebook.read_text())["metadata"].get("papermill", {})
        if papermill.get("start_time"):
            started = datetime.fromisoformat(papermill["start_time"])
            seconds = float(papermill.get("duration") or 0.0)
    return TaskTimes(task["task_key"], task["state"], float(task["duration_seconds"]), started,
                     seconds)


def millis(moment: datetime) -> int:
    """Epoch milliseconds, as the event log and the Delta log write time."""
    return int(moment.timestamp() * 1000)


# --- running ----------------------------------------------------------------------------------


def run_days(root: Path, runs_root: Path, days: Sequence[date], scale: float,
             server_url: str) -> list[BuildRun]:
    """Generate, then per day: advance the sources, run the ingest (and its build).

    One kernel pool serves every day, as ``make demo`` keeps one: a warm day is warm in its
    kernels too.
    """
    data = generate(GeneratorConfig(seed=42, scale=scale, days=len(days), start_date=days[0]))
    bundle = load_bundle(repo_root(), variables={"storage_root": str(root)})
    jobs = {key: parse_job(key, raw) for key, raw in bundle.jobs.items()}
    runs_root.mkdir(parents=True, exist_ok=True)
    kernels = KernelPool({"SPARK_REMOTE": server_url}, runs_root, size=5, limit=5)
    options = RunOptions(runs_root=runs_root, max_parallel=5,
                         observer=RunRecorder.for_bundle(bundle), jobs=jobs, kernels=kernels)
    try:
        return _run_days(root, runs_root, days, data, jobs, options)
    finally:
        kernels.close()


def _run_days(root: Path, runs_root: Path, days: Sequence[date], data: GeneratedData,
              jobs: Mapping[str, JobSpec], options: RunOptions) -> list[BuildRun]:
    builds = []
    for day in days:
        report = load_day(StorageRoot(root), data, day)
        ingest = run_job(jobs[INGEST_JOB], {"run_date": day.isoformat()}, options)
        if ingest.exit_code:
            raise SystemExit(ingest.failure_message())
        builds.append(read_build_run(runs_root, day))
        print(f"  {day}: sources advanced ("
              + ", ".join(f"{system.system} {system.rows}" for system in report.systems)
              + f"); ingest + build {ingest.duration_seconds:.1f} s, build "
              f"{builds[-1].seconds:.1f} s", flush=True)
    return builds


def run_bare(server_url: str, raw_zone: Path, bare_root: Path,
             days: Sequence[date]) -> list[dict[str, float]]:
    """The bare baseline over a copy of the raw zone, on the warm server: seconds per layer."""
    from pyspark.sql import SparkSession

    shutil.copytree(raw_zone, bare_root / "raw")
    spark = SparkSession.builder.remote(server_url).getOrCreate()
    try:
        specs = Specs.load()
        return [{layer: sum(tables.values())
                 for layer, tables in run_bare_day(spark, bare_root, day, specs).items()}
                for day in days]
    finally:
        spark.stop()


SPARK, KERNELS, RUNNER = "Spark server", "notebook kernels", "runner"
REST = "stand-ins and the rest"


def machine_sampler(server_pid: int) -> CpuSampler:
    """A CPU sampler that groups the machine's processes: the warm Spark server (and its JVM),
    the notebook kernels, this process (the job runner), and everything else."""
    server_tree: set[int] = set()
    jvm: list[int] = []

    def refresh() -> None:
        if not server_tree:
            server = psutil.Process(server_pid)
            tree = [server, *server.children(recursive=True)]
            server_tree.update(process.pid for process in tree)
            jvm.extend(process.pid for process in tree if process.name() == "java")

    def group_of(process: psutil.Process) -> str:
        refresh()
        if process.pid in server_tree:
            return SPARK
        if process.pid == os.getpid():
            return RUNNER
        return KERNELS if "ipykernel" in " ".join(process.cmdline()) else REST

    def jvm_pid() -> int | None:
        refresh()
        return jvm[0] if jvm else None

    return CpuSampler(group_of, jvm_pid)


# --- report -----------------------------------------------------------------------------------


def print_build(build: BuildRun, index: int, jobs: Sequence[SparkJob],
                commits: Sequence[Commit], cpu: Sequence[CpuReading]) -> None:
    """One build run: a line per task, then totals."""
    prefix = build.label_prefix
    jobs_of = by_label(jobs, prefix)
    commits_of = by_label(commits, prefix)
    kind = "first day" if index == 0 else "warm day"
    target = FIRST_DAY_TARGET if index == 0 else WARM_DAY_TARGET
    print(f"\nbuild_analytics {build.day} (day {index + 1}, {kind}; target <= {target} s): "
          f"{build.seconds:.1f} s wall, run {build.run_id}")
    print(f"  {'task':<26}{'state':<9}{'at s':>6}{'s':>7}{'nb s':>7}{'jobs':>6}{'spark s':>8}"
          f"{'commits':>8}  what the commits were")
    for task in build.tasks:
        task_jobs = jobs_of.get(task.key, [])
        task_commits = commits_of.get(task.key, [])
        at = "" if task.started is None else f"{(task.started - build.started).total_seconds():.1f}"
        notebook = "" if task.notebook_seconds is None else f"{task.notebook_seconds:.1f}"
        print(f"  {task.key:<26}{task.state[:8]:<9}{at:>6}{task.seconds:>7.1f}{notebook:>7}"
              f"{len(task_jobs):>6}{busy_seconds(task_jobs):>8.1f}{len(task_commits):>8}  "
              f"{describe_commits(task_commits)}")
    tagged = [job for task_jobs in jobs_of.values() for job in task_jobs]
    stray = list(untagged(jobs, [prefix], millis(build.started), millis(build.ended)))
    made = [commit for task_commits in commits_of.values() for commit in task_commits]
    unlabelled = [
        commit for commit in commits
        if commit.label(prefix) is None
        and millis(build.started) <= commit.timestamp_ms <= millis(build.ended)
    ]
    task_seconds = sum(task.seconds for task in build.tasks)
    notebook_seconds = sum(task.notebook_seconds or 0.0 for task in build.tasks)
    print(f"  {'total (tasks summed)':<26}{'':<9}{'':>6}{task_seconds:>7.1f}"
          f"{notebook_seconds:>7.1f}{len(tagged):>6}{busy_seconds(tagged):>8.1f}{len(made):>8}")
    print(f"  wall {build.seconds:.1f} s; Spark busy (any job running) "
          f"{busy_seconds([*tagged, *stray]):.1f} s; {len(stray)} job(s) during the run carried "
          f"no task label (kernel warm-ups, Delta's own file-filtering jobs), and "
          f"{len(unlabelled)} commit(s); commits by operation: {describe_operations(made)}")
    used = cpu_between(cpu, build.started.timestamp(), build.ended.timestamp())
    if used:
        cores = psutil.cpu_count() or 1
        others = (KERNELS, RUNNER, REST)
        print(f"  CPU in core-seconds, of the {cores} cores' {cores * build.seconds:.1f}: "
              f"{SPARK} {used.get(SPARK, 0.0) + used.get(JIT, 0.0) + used.get(GC, 0.0):.1f} "
              f"(its JIT compiler threads {used.get(JIT, 0.0):.1f}, GC threads "
              f"{used.get(GC, 0.0):.1f}), "
              + ", ".join(f"{group} {used.get(group, 0.0):.1f}" for group in others)
              + f"; idle {used.get(IDLE, 0.0):.1f}")


def describe_operations(commits: Sequence[Commit]) -> str:
    """``WRITE 30, MERGE 4``: commits per Delta operation, most first."""
    counts: dict[str, int] = {}
    for commit in commits:
        counts[commit.operation] = counts.get(commit.operation, 0) + 1
    return ", ".join(f"{operation} {count}" for operation, count in
                     sorted(counts.items(), key=lambda item: -item[1]))


def print_bare(builds: Sequence[BuildRun], bare: Sequence[dict[str, float]],
               jobs: Sequence[SparkJob], commits: Sequence[Commit]) -> None:
    """The baseline per day and layer, and the job's time as a multiple of it."""
    print("\nbare PySpark baseline: one session on the same warm server, the same transforms and "
          "Delta writes;\nno runner, notebooks, DQ, quarantine, GE, lineage or publish")
    print(f"  {'day':<12}" + "".join(f"{layer + ' s':>10}" for layer in LAYERS)
          + f"{'total s':>9}{'jobs':>6}{'commits':>8}{'job s':>8}{'job/bare':>9}")
    for build, seconds in zip(builds, bare, strict=True):
        prefix = f"{LABEL_PREFIX}{build.day}/"
        day_jobs = [job for job in jobs if job.label(prefix) is not None]
        day_commits = [commit for commit in commits if commit.label(prefix) is not None]
        total = sum(seconds.values())
        print(f"  {build.day.isoformat():<12}" + "".join(f"{seconds[layer]:>10.1f}"
                                                        for layer in LAYERS)
              + f"{total:>9.1f}{len(day_jobs):>6}{len(day_commits):>8}{build.seconds:>8.1f}"
              f"{build.seconds / total:>8.1f}x")
    last = builds[-1].day
    for layer in LAYERS:
        layer_commits = [c for c in commits if c.label(f"{LABEL_PREFIX}{last}/") == layer]
        print(f"  {last} {layer} commits: {describe_commits(layer_commits)}")


def main() -> None:
    """Run the days, then the baseline; print the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="generator scale (1.0 = demo)")
    parser.add_argument("--days", type=int, default=2, help="business days (day 1 is the first)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary storage roots")
    args = parser.parse_args()
    if args.days < 1:
        parser.error("--days: expected at least 1")
    days = [START + timedelta(days=offset) for offset in range(args.days)]
    with scratch("medallion-bench-day-", keep=args.keep) as work:
        root, runs_root, events = work / "lakehouse", work / "runs", work / "spark-events"
        print(f"small-day benchmark: scale {args.scale}, {args.days} day(s) from {days[0]}, under "
              f"{work}; load average {os.getloadavg()[0]:.1f}", flush=True)
        started = time.monotonic()
        stack.up(StorageRoot(root))
        try:
            # Only the warm server reads it: the event log is the benchmark's, not production's.
            os.environ[EVENT_LOG_DIR_ENV] = str(events)
            try:
                server = compute.pin_server(StorageRoot(root))
            finally:
                os.environ.pop(EVENT_LOG_DIR_ENV, None)
            print(f"  stand-ins and warm server up in {time.monotonic() - started:.1f} s",
                  flush=True)
            with machine_sampler(server.pid) as sampler:
                builds = run_days(root, runs_root, days, args.scale, server.url)
            bare_started = time.monotonic()
            bare = run_bare(server.url, root / "raw", work / "bare", days)
            print(f"  bare baseline done in {time.monotonic() - bare_started:.1f} s", flush=True)
        finally:
            compute.unpin_server(StorageRoot(root))  # the server stops: its event log is complete
            stack.down(StorageRoot(root))
        jobs = read_event_log_jobs(events)
        commits = read_commits(root)
        for index, build in enumerate(builds):
            print_build(build, index, jobs, commits, sampler.readings)
        print_bare(builds, bare, jobs, read_commits(work / "bare"))
        warm = ", ".join(f"{build.seconds:.1f} s" for build in builds[1:]) or "-"
        print(f"\nbuild_analytics: first day {builds[0].seconds:.1f} s (target <= "
              f"{FIRST_DAY_TARGET} s), warm day(s) {warm} (target <= {WARM_DAY_TARGET} s); "
              f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
