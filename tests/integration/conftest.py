"""One lakehouse for every integration module: the five real source stand-ins, two built days.

The world is built once per test session (package scope) and shared in file order:
``test_build_analytics`` reads it and then breaks things on purpose (each such test puts back what
it broke), ``test_fx_slice_job`` reads and re-runs its slice, and ``test_ingest_job`` lands a
third day with a source down, then reloads the whole range. A module run on its own builds the
same world first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from pyspark.sql import DataFrame, SparkSession

from medallion.lakehouse.credentials import env_name
from medallion.lakehouse.raw.landing import load_dir, raw_zone, read_manifest
from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.spark import GOLD_INCREMENTAL_MIN_BYTES_ENV
from medallion.lakehouse.storage import StorageRoot
from medallion.platform import compute
from medallion.platform.devstack import stack
from medallion.platform.generate import GeneratedData, GeneratorConfig, generate
from medallion.platform.generate.load import LoadReport, load_day

# Three generated days: two are ingested and built (a first day, then a later one that merges
# into it); the third is the ingest job's, for a day with a source down. Two built days prove
# what three did (each table's first build, then a later day's merge) at two thirds of the cost;
# only the watchdog's volume check, which wants two earlier days, is skipped on them.
# With this seed, scale and late-update rate every kind of dirt the tests trace reaches the
# built days, and late CRM updates and Kafka CDC of the first day's orders arrive on the second
# (``test_build_analytics`` checks that first, so no test passes on data that lacks its case).
WORLD = GeneratorConfig(seed=42, scale=0.1, days=3, start_date=date(2026, 11, 2),
                        late_update_rate=0.1)
BUILT_DAYS = 2
KNOWN_SALT = "s4lt-known-to-the-test-3c1e"  # the PII hash salt of every run, to be searched for


class SourceWorld:
    """A storage root whose stand-ins hold generated data up to the days advanced so far."""

    def __init__(self, root: Path, runs: Path, data: GeneratedData,
                 env: dict[str, str] | None = None) -> None:
        self.root, self.runs, self.data = root, runs, data
        self.env = env or {}  # set for every CLI run (the local secrets provider reads it)
        self.reports: dict[date, LoadReport] = {}
        self.outputs: list[str] = []  # every CLI run's stdout and stderr, for the secrets scan

    def day(self, index: int) -> date:
        """The generated business day ``index`` (0-based)."""
        return self.data.config.start_date + timedelta(days=index)

    def advance(self, day: date) -> LoadReport:
        """Make the source systems look as they would at the end of ``day``."""
        self.reports[day] = load_day(StorageRoot(self.root), self.data, day)
        return self.reports[day]

    def medallion(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """The CLI as a user runs it, against this lakehouse."""
        runs = ["--runs-root", str(self.runs)] if args[0] == "jobs" else []
        result = subprocess.run(
            [sys.executable, "-m", "medallion", *args, "--bundle-root", str(repo_root()),
             "--var", f"storage_root={self.root}", *runs],
            capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, **self.env, "COLUMNS": "200"},
        )
        self.outputs.append(result.stdout + result.stderr)
        return result

    def run_job(self, job: str, *params: str, only: tuple[str, ...] = ()
                ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        """Run a job with ``k=v`` parameters (``only`` these tasks, when given); the process
        result and the run's ``run.json``."""
        before = set((self.runs / job).glob("*/run.json"))
        arguments = [part for param in params for part in ("--param", param)]
        if only:
            arguments += ["--only", ",".join(only)]
        result = self.medallion("jobs", "run", job, "--max-parallel", "5", *arguments)
        new = set((self.runs / job).glob("*/run.json")) - before
        assert len(new) == 1, result.stdout + result.stderr
        return result, json.loads(new.pop().read_text())

    def raw_records(self, source: str, entity: str | None, day: date) -> list[dict[str, Any]]:
        """Every record of one complete raw load, in file order."""
        manifest = read_manifest(load_dir(raw_zone(StorageRoot(self.root)), source, entity, day))
        records: list[dict[str, Any]] = []
        for path in manifest.data_paths:
            with path.open(encoding="utf-8") as handle:
                records.extend(json.loads(line) for line in handle)
        return records


@dataclass
class BuiltWorld:
    """The shared world after its built days: each day's ingest run, and what the late-update
    test needs from after each day (dim_customer and gold by customer)."""

    world: SourceWorld
    ingest_runs: dict[date, dict[str, Any]] = field(default_factory=dict)
    after: dict[date, dict[str, Any]] = field(default_factory=dict)

    @property
    def days(self) -> list[date]:
        return list(self.ingest_runs)


@pytest.fixture(scope="package")
def source_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SourceWorld]:
    """Generated data and the five stand-ins, nothing loaded yet (``built_world`` loads it).

    One warm Spark server serves every run; it and the stand-ins stop after the last
    integration test.
    """
    base = tmp_path_factory.mktemp("world")
    root = base / "lakehouse"
    data = generate(WORLD)
    stack.up(StorageRoot(root))
    # One warm Spark server for every run of every module (and any a run starts again). Its
    # gold tables are built in part whatever their size: that path is what the partial-equals-
    # full test proves (by default a world this small is rebuilt whole, as the demo's is).
    in_part = {GOLD_INCREMENTAL_MIN_BYTES_ENV: "0"}
    with mock.patch.dict(os.environ, in_part):
        compute.pin_server(StorageRoot(root))
    try:
        yield SourceWorld(root, base / "runs", data,
                          env={env_name("pii-hash-salt"): KNOWN_SALT, **in_part})
    finally:
        compute.unpin_server(StorageRoot(root))
        stack.down(StorageRoot(root))


@pytest.fixture(scope="package")
def built_world(source_world: SourceWorld, spark: SparkSession) -> BuiltWorld:
    """Days 0 and 1: each day the sources advance, then ``ingest_daily_sources`` runs, which
    lands the day and builds it (its ``build_analytics`` child run)."""
    built = BuiltWorld(source_world)
    for index in range(BUILT_DAYS):
        day = source_world.day(index)
        source_world.advance(day)
        result, record = source_world.run_job("ingest_daily_sources", f"run_date={day}")
        assert result.returncode == 0, result.stdout + result.stderr
        built.ingest_runs[day] = record
        built.after[day] = {
            "dim_customer": {row["customer_id"]: row.asDict() for row in
                             read_table(spark, source_world, "silver.dim_customer").collect()},
            "gold": {row["customer_id"]: row.asDict() for row in
                     read_table(spark, source_world, "gold.fact_customer_360").collect()},
        }
    return built


def read_table(spark: SparkSession, world: SourceWorld, name: str) -> DataFrame:
    """A table of the world's lakehouse (``schema.table``), read by path."""
    schema, name_in_schema = name.split(".")
    return spark.read.format("delta").load(str(world.root / schema / name_in_schema))
