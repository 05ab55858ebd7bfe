"""The FX slice end to end: the real bundle's jobs through the `medallion` CLI, warm compute.

FX-rates stand-in (HTTP, with the other four sources beside it, as the ingest job needs them) →
raw → bronze → silver → gold, checked against an oracle computed from the stand-in's own rate
function, not from the pipeline's code. The days are the integration package's shared world's
built days.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import psutil
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.spark import local_frame
from medallion.platform.devstack.fx_api import CURRENCIES, synthetic_usd_rate
from tests.integration.conftest import BuiltWorld, SourceWorld

pytestmark = pytest.mark.integration

SEED = 42  # the world's seed, from which the stand-in derives its rates
TABLES = ("bronze.fx_rates", "silver.fx_rates", "gold.fx_daily_change")
FX_TASKS = ("bronze_fx_rates", "silver_fx_rates", "gold_fx_daily_change")


class Lakehouse:
    """The module's storage root and runs folder, on a world of five source stand-ins."""

    def __init__(self, world: SourceWorld, dates: list[date]) -> None:
        self.world, self.root, self.runs = world, world.root, world.runs
        self.dates = dates  # the business days built, in order

    def medallion(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the CLI as a user would, against this lakehouse."""
        return self.world.medallion(*args)

    def run_day(self, run_date: date, build: str = "SUCCESS") -> None:
        """Ingest one business date, which builds it too (run_job_task) when a load is new.

        Ingest must succeed, and the build end in ``build`` (EXCLUDED: nothing new to build).
        """
        result, record = self.world.run_job("ingest_daily_sources",
                                            f"run_date={run_date.isoformat()}")
        assert result.returncode == 0, result.stdout + result.stderr
        states = {task["task_key"]: task["state"] for task in record["tasks"]}
        assert states["build_analytics"] == build

    def fx_slice_command(self, run_date: date) -> list[str]:
        """The CLI command running only the FX slice's tasks of build_analytics for a day."""
        return [sys.executable, "-m", "medallion", "jobs", "run", "build_analytics",
                "--param", f"run_date={run_date}", "--bundle-root", str(repo_root()),
                "--var", f"storage_root={self.root}", "--runs-root", str(self.runs),
                "--only", ",".join(FX_TASKS)]

    def table(self, spark: SparkSession, name: str) -> DataFrame:
        """A table of this lakehouse, read by path."""
        schema, table = name.split(".")
        return spark.read.format("delta").load(str(self.root / schema / table))


@pytest.fixture(scope="module")
def lakehouse(built_world: BuiltWorld) -> Lakehouse:
    """The built days: each the sources advanced, then the daily jobs ran, on a warm server."""
    return Lakehouse(built_world.world, built_world.days)


def expected_silver(spark: SparkSession, dates: list[date]) -> DataFrame:
    """The oracle: every (date, currency) rate the stand-in serves, typed as silver types them."""
    rows = [(d, "USD", c, Decimal(str(synthetic_usd_rate(SEED, d, c)))) for d in dates
            for c in CURRENCIES]
    return local_frame(
        spark,
        rows, "rate_date DATE, base STRING, currency STRING, rate DECIMAL(18,8)"
    )


def expected_gold(spark: SparkSession, dates: list[date]) -> DataFrame:
    """The oracle for gold: each day against the day before, change rounded half-up to 4
    places; the first day has no previous rate."""
    rows: list[tuple[date, str, Decimal, date | None, Decimal | None, Decimal | None]] = []
    for currency in CURRENCIES:
        rates = [Decimal(str(synthetic_usd_rate(SEED, d, currency))) for d in dates]
        rows.append((dates[0], currency, rates[0], None, None, None))
        for index in range(1, len(dates)):
            first, second = rates[index - 1], rates[index]
            change = ((second - first) / first * 100).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            rows.append((dates[index], currency, second, dates[index - 1], first, change))
    return local_frame(
        spark,
        rows,
        "rate_date DATE, currency STRING, rate DECIMAL(18,8), previous_rate_date DATE, "
        "previous_rate DECIMAL(18,8), change_pct DECIMAL(18,4)",
    )


def snapshot(spark: SparkSession, house: Lakehouse) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows, sorted, to compare runs."""
    return {name: sorted(tuple(r) for r in house.table(spark, name).collect()) for name in TABLES}


def test_raw_zone_holds_one_complete_load_per_day(lakehouse: Lakehouse) -> None:
    loads = sorted(p.name for p in (lakehouse.root / "raw" / "fx_rates").iterdir())
    assert loads == [f"load_dt={d.isoformat()}" for d in lakehouse.dates]
    for load in loads:
        manifest = json.loads((lakehouse.root / "raw/fx_rates" / load / "_manifest.json")
                              .read_text())
        assert manifest["row_count"] == len(CURRENCIES)


def test_bronze_keeps_every_landed_row_per_day(
    spark: SparkSession, lakehouse: Lakehouse
) -> None:
    bronze = lakehouse.table(spark, "bronze.fx_rates")
    counts = bronze.groupBy("_proc_date").count().collect()
    per_day = {(row["_proc_date"], row["count"]) for row in counts}
    assert per_day == {(d, len(CURRENCIES)) for d in lakehouse.dates}


def test_silver_matches_the_source_oracle(spark: SparkSession, lakehouse: Lakehouse) -> None:
    silver = lakehouse.table(spark, "silver.fx_rates").select("rate_date", "base", "currency",
                                                              "rate")
    assertDataFrameEqual(silver, expected_silver(spark, lakehouse.dates))


def test_gold_matches_the_oracle(spark: SparkSession, lakehouse: Lakehouse) -> None:
    gold = lakehouse.table(spark, "gold.fx_daily_change").select(
        "rate_date", "currency", "rate", "previous_rate_date", "previous_rate", "change_pct"
    )
    assertDataFrameEqual(gold, expected_gold(spark, lakehouse.dates))


def test_tables_are_registered_for_sql(lakehouse: Lakehouse) -> None:
    day = lakehouse.dates[1]
    result = lakehouse.medallion(
        "sql", f"SELECT currency, rate FROM silver.fx_rates WHERE rate_date = '{day}' "
        "AND currency = 'USD'", "--format", "json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"currency": "USD", "rate": "1.00000000"}]


def test_rerunning_an_unchanged_day_skips_the_build_and_leaves_every_table_identical(
    spark: SparkSession, lakehouse: Lakehouse
) -> None:
    # A rebuild of the same loads is idempotent too: test_build_analytics reruns one, these
    # tables among those it compares.
    before = snapshot(spark, lakehouse)

    lakehouse.run_day(lakehouse.dates[1], build="EXCLUDED")

    assert snapshot(spark, lakehouse) == before


def test_two_runs_at_once_are_serialised_and_corrupt_nothing(
    spark: SparkSession, lakehouse: Lakehouse
) -> None:
    before = snapshot(spark, lakehouse)
    # The FX slice's own tasks of the job (raw → bronze → silver → gold), twice at once.
    command = lakehouse.fx_slice_command(lakehouse.dates[1])
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outputs
    run_files = (lakehouse.runs / "build_analytics").glob("*/run.json")
    records = sorted((json.loads(p.read_text()) for p in run_files),
                     key=lambda record: record["started_at"])[-2:]
    first, second = records
    assert second["started_at"] >= first["ended_at"]
    assert snapshot(spark, lakehouse) == before


def test_a_run_killed_mid_task_is_recorded_stops_its_kernels_and_a_rerun_repairs_it(
    spark: SparkSession, lakehouse: Lakehouse
) -> None:
    before = snapshot(spark, lakehouse)
    command = lakehouse.fx_slice_command(lakehouse.dates[1])
    earlier = set((lakehouse.runs / "build_analytics").glob("*/run.json"))
    runner = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record_path, record = None, {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and runner.poll() is None:
        new = set((lakehouse.runs / "build_analytics").glob("*/run.json")) - earlier
        if new:
            record_path = new.pop()
            with contextlib.suppress(ValueError):  # read while it is replaced
                record = json.loads(record_path.read_text())
            if {t["task_key"]: t["state"] for t in record["tasks"]}.get(
                    "silver_fx_rates") == "RUNNING":
                break
        time.sleep(0.05)
    assert runner.poll() is None, "the run ended before it reached silver"
    assert record_path is not None, "the run never recorded itself"
    kernels = psutil.Process(runner.pid).children(recursive=True)
    time.sleep(1)  # into the silver step

    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()

    _, alive = psutil.wait_procs(kernels, timeout=10)
    assert alive == [], f"processes of the killed run still running: {alive}"
    assert json.loads(record_path.read_text())["state"] == "RUNNING"  # as it was left

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    killed = json.loads(record_path.read_text())
    assert killed["state"] == "INTERNAL_ERROR"
    silver = next(t for t in killed["tasks"] if t["task_key"] == "silver_fx_rates")
    assert silver["state"] == "FAILED"
    assert silver["error"].startswith(f"did not finish: the runner (pid {runner.pid}) ended")
    # Nothing of the killed run is left RUNNING or PENDING (--only runs the three at once).
    assert {t["state"] for t in killed["tasks"]} <= {"SUCCESS", "FAILED", "CANCELED"}
    summary = (lakehouse.root / "_runs" / f"dt={lakehouse.dates[1]}" / "build_analytics"
               / killed["run_id"] / "run_summary.json")
    assert json.loads(summary.read_text())["state"] == "INTERNAL_ERROR"
    assert snapshot(spark, lakehouse) == before  # the same tables as an uninterrupted run


def test_a_day_without_raw_data_skips_every_layer(lakehouse: Lakehouse) -> None:
    result = lakehouse.medallion("jobs", "run", "build_analytics", "--param",
                                 "run_date=2026-01-01")

    assert result.returncode == 0, result.stderr
    record = json.loads(max((lakehouse.runs / "build_analytics").glob("*/run.json"),
                            key=lambda p: p.parent.name).read_text())
    states = {t["task_key"]: t["state"] for t in record["tasks"]}
    assert states.pop("check_raw_files") == states.pop("has_raw_files") == "SUCCESS"
    assert "bronze_fx_rates" in states
    assert set(states.values()) == {"EXCLUDED"}, states
