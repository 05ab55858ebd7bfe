"""The FX slice on a real multi-process Spark cluster: a standalone master and two workers.

The warm driver (``medallion compute up``) runs with ``MEDALLION_SPARK_MASTER=spark://…``, so the
notebooks' Spark work runs in executors, JVMs of their own that the workers launch, not in the
driver. The FX stand-in serves one business day's rates, landed by the ingest job's FX step
(``ingest_fx``, which its notebook calls; it runs no Spark). The bundle's job builds the day
bronze → silver → gold through the ``medallion`` CLI, one task per run: ``--only`` with the three
FX tasks would start them at once (the DQ breakers that order the layers are left out, and need
the other sources' tables). One day gives gold a row per currency.

It runs in catalog mode, as on Databricks (a Unity Catalog catalog on a cluster): the job's
``catalog`` parameter is ``spark_catalog``, the local stand-in (Spark's session catalog named in
full), whose schemas are created first as ``databricks bundle deploy`` creates a catalog's. So
the tables are managed tables of the catalog, not folders of the storage root.

Checked against test_fx_slice_job's oracle, computed from the stand-in's own rate function,
against the driver's Spark event log (which executors, launched by which worker, ran the Spark
jobs of each task), against the catalog (managed tables), and against the grants that
``medallion bundle grants`` renders for the schemas written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.connect.session import SparkSession as RemoteSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.environment import Environment
from medallion.lakehouse.pipelines.ingest import ingest_fx
from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.spark import EVENT_LOG_DIR_ENV
from medallion.lakehouse.storage import StorageRoot
from medallion.platform import compute
from medallion.platform.bundle import load_bundle
from medallion.platform.devstack import stack
from tests.integration.test_fx_slice_job import FX_TASKS, expected_gold, expected_silver
from tests.platform.cluster.standalone import standalone_cluster

DAY = date(2026, 11, 2)
WORKERS = 2  # of 1 core and 1 GB each
JOB = "build_analytics"
CATALOG = "spark_catalog"  # the local stand-in of a Unity Catalog catalog
TABLES = ("bronze.fx_rates", "bronze.fx_rates_quarantine", "bronze.fx_rates_unknown_columns",
          "silver.fx_rates", "silver.fx_rates_quarantine", "gold.fx_daily_change")
OPS_TABLES = ("ops.dq_event_log",)  # the silver and gold steps' DQ metrics


@dataclass(frozen=True)
class ClusterRun:
    """What the slice left behind once the driver and the cluster stopped."""

    root: Path  # the lakehouse
    outputs: list[str]  # each CLI run's stdout and stderr
    records: list[dict[str, Any]]  # each job run's run.json, in task order
    event_log: Path  # the driver's Spark event log (one application)
    workers: list[str]  # the cluster's workers, by name
    executors: dict[str, str]  # executor id → the worker that launched it for the driver's app
    tables: dict[str, dict[str, str]]  # each catalog table's DESCRIBE TABLE EXTENDED, read live

    def table_path(self, table: str) -> Path:
        """Where the stand-in catalog keeps a managed table: its session's warehouse folder."""
        schema, name = table.split(".")
        return self.root / "_system" / "spark-warehouse" / f"{schema}.db" / name


def medallion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, in ``env`` (the cluster's master among it)."""
    return subprocess.run(
        [sys.executable, "-m", "medallion", *args, "--bundle-root", str(repo_root())],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, **env, "COLUMNS": "200"},
    )


def run_task(env: dict[str, str], root: Path, runs: Path, task_key: str
             ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """One task of build_analytics for ``DAY``: the process result and the run's run.json."""
    before = set((runs / JOB).glob("*/run.json"))
    result = medallion(env, "jobs", "run", JOB, "--param", f"run_date={DAY}",
                       "--param", f"catalog={CATALOG}", "--only", task_key,
                       "--var", f"storage_root={root}", "--runs-root", str(runs))
    new = set((runs / JOB).glob("*/run.json")) - before
    return result, json.loads(new.pop().read_text()) if len(new) == 1 else None


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory: pytest.TempPathFactory) -> ClusterRun:
    """Two 1-core, 1 GB workers; the FX stand-in; the day landed and built, task after task.

    Everything is stopped before the tests look: the driver first, so its event log is complete.
    """
    base = tmp_path_factory.mktemp("cluster")
    root, runs, events = base / "lakehouse", base / "runs", base / "events"
    outputs: list[str] = []
    records: list[dict[str, Any]] = []
    with standalone_cluster(base / "spark", workers=WORKERS, cores=1, memory="1g") as cluster:
        env = {**cluster.client_env(), EVENT_LOG_DIR_ENV: str(events)}
        stack.up(StorageRoot(root), ("fx_api",))
        try:
            up = medallion(env, "compute", "up", "--storage-root", str(root))
            assert up.returncode == 0, up.stdout + up.stderr
            server = compute.find_server(StorageRoot(root))
            assert server is not None
            remote = RemoteSession.builder.remote(server.url).create()
            try:
                # What `databricks bundle deploy` does for a catalog: create the bundle's schemas.
                schemas = load_bundle(repo_root(), "dev").config["resources"]["schemas"]
                for schema in schemas.values():
                    remote.sql(f"CREATE SCHEMA IF NOT EXISTS {CATALOG}.{schema['name']}")
                storage_root = StorageRoot(root)
                local = Environment.resolve(
                    storage_root, stand_ins=stack.local_stand_ins(storage_root)
                )
                ingest_fx(local, DAY)  # the ingest job's FX step, to the stand-in
                for task_key in FX_TASKS:
                    result, record = run_task(env, root, runs, task_key)
                    outputs.append(result.stdout + result.stderr)
                    records.extend([record] if record else [])
                    if result.returncode != 0:
                        break  # the next layer would only fail on what this one left
                tables = {  # the stand-in catalog lives in the driver: read it before it stops
                    table: {row["col_name"]: row["data_type"] for row in remote.sql(
                        f"DESCRIBE TABLE EXTENDED {CATALOG}.{table}").collect()}
                    for schema in ("bronze", "silver", "gold")
                    for table in (f"{schema}.{row['tableName']}" for row in
                                  remote.sql(f"SHOW TABLES IN {CATALOG}.{schema}").collect())
                }
            finally:
                remote.stop()
                medallion(env, "compute", "down", "--storage-root", str(root))
        finally:
            stack.down(StorageRoot(root), ("fx_api",))
        (event_log,) = events.iterdir()
        workers = [worker.name for worker in cluster.workers]
        executors = cluster.executors_of(application_id(event_log))
    return ClusterRun(root, outputs, records, event_log, workers, executors, tables)


def spark_events(event_log: Path) -> list[dict[str, Any]]:
    """Every event of an (uncompressed) Spark event log, in order."""
    with event_log.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def application_id(event_log: Path) -> str:
    """The id the cluster manager gave the application (``local-…`` in local mode)."""
    start = next(event for event in spark_events(event_log)
                 if event["Event"] == "SparkListenerApplicationStart")
    return str(start["App ID"])


def executors_by_label(event_log: Path, labels: list[str]) -> dict[str, set[str]]:
    """The executors that ran tasks of each runner task's Spark jobs: label → executor ids.

    A runner task's Spark jobs carry its label (``<job>/<run_id>/<task_key>``) at the end of one
    of their tags; in local mode every Spark task runs in executor ``driver``.
    """
    events = spark_events(event_log)
    label_of_stage = {}
    for event in events:
        if event["Event"] == "SparkListenerJobStart":
            tags = event["Properties"].get("spark.job.tags", "").split(",")
            label = next((candidate for candidate in labels
                          if any(tag.endswith(candidate) for tag in tags)), None)
            if label is not None:
                label_of_stage.update(dict.fromkeys(event["Stage IDs"], label))
    executors: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event["Event"] == "SparkListenerTaskEnd" and event["Stage ID"] in label_of_stage:
            executors[label_of_stage[event["Stage ID"]]].add(event["Task Info"]["Executor ID"])
    return dict(executors)


def test_each_fx_task_succeeds_on_the_cluster(cluster_run: ClusterRun) -> None:
    states = [(record["tasks"][0]["task_key"], record["state"]) for record in cluster_run.records]

    assert states == [(task_key, "SUCCESS") for task_key in FX_TASKS], cluster_run.outputs


def test_the_fx_tasks_ran_their_spark_jobs_on_executors_of_both_workers(
    cluster_run: ClusterRun,
) -> None:
    task_of_label = {f"{JOB}/{record['run_id']}/{record['tasks'][0]['task_key']}":
                     record["tasks"][0]["task_key"] for record in cluster_run.records}
    ran = executors_by_label(cluster_run.event_log, list(task_of_label))
    workers_by_task = {
        task_of_label[label]: {
            cluster_run.executors.get(executor, f"executor {executor!r} of no worker")
            for executor in executors
        }
        for label, executors in ran.items()
    }

    # Each worker launched one executor (its one core) for the driver's application ...
    assert sorted(cluster_run.executors.values()) == cluster_run.workers
    # ... and there every task's Spark jobs ran, on both workers together, none in the driver
    # (as all would in local mode).
    assert set(workers_by_task) == set(FX_TASKS)
    assert set().union(*workers_by_task.values()) == set(cluster_run.workers), workers_by_task


def test_silver_matches_the_source_oracle(spark: SparkSession, cluster_run: ClusterRun) -> None:
    silver = spark.read.format("delta").load(str(cluster_run.table_path("silver.fx_rates")))

    assertDataFrameEqual(silver.select("rate_date", "base", "currency", "rate"),
                         expected_silver(spark, [DAY]))


def test_gold_matches_the_oracle(spark: SparkSession, cluster_run: ClusterRun) -> None:
    gold = spark.read.format("delta").load(str(cluster_run.table_path("gold.fx_daily_change")))

    assertDataFrameEqual(
        gold.select("rate_date", "currency", "rate", "previous_rate_date", "previous_rate",
                    "change_pct"),
        expected_gold(spark, [DAY]),
    )


def test_the_tables_are_managed_tables_of_the_catalog_and_none_is_a_folder_of_the_root(
    cluster_run: ClusterRun,
) -> None:
    assert sorted(cluster_run.tables) == sorted(TABLES)
    for table, details in cluster_run.tables.items():
        assert (details["Name"], details["Type"], details["Is_managed_location"]) == (
            f"{CATALOG}.{table}", "MANAGED", "true")
        assert not (cluster_run.root / table.split(".")[0]).exists()  # path mode's <root>/<schema>
    # The only Delta tables are the catalog's (the stand-in keeps them in its warehouse folder).
    logs = sorted(log.parent for log in cluster_run.root.rglob("_delta_log"))
    assert logs == sorted(cluster_run.table_path(table) for table in (*TABLES, *OPS_TABLES))


def test_grants_cover_the_schemas_the_tables_were_written_to(cluster_run: ClusterRun) -> None:
    result = medallion({}, "bundle", "grants", "-t", "dev", "--var", f"catalog={CATALOG}")
    assert result.returncode == 0, result.stderr
    written = {table.split(".")[0] for table in cluster_run.tables}

    assert written == {"bronze", "silver", "gold"}
    assert [line for line in result.stdout.splitlines()
            if any(f"ON SCHEMA {CATALOG}.{schema} " in line for schema in written)] == [
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.bronze TO `data_engineer`;",
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.silver TO `data_engineer`;",
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.silver TO `data_analyst`;",
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.gold TO `data_engineer`;",
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.gold TO `data_analyst`;",
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.gold TO `ml`;",
    ]
