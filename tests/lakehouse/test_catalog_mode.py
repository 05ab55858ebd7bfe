"""Catalog mode: the FX slice with a ``catalog`` job parameter writes managed catalog tables.

On Databricks the tables are Unity Catalog tables ``<catalog>.<schema>.<table>``; the storage
root (a volume) keeps only the raw zone and run state. Locally the same code runs against Spark's
session catalog under its own name, ``spark_catalog``: the stand-in, deployed the way the bundle
deploys a catalog's schemas. Two days of FX rates are landed from the FX stand-in; the slice's
notebook tasks then run through the `medallion` CLI on a warm server, as in production.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.connect.session import SparkSession as RemoteSession
from pyspark.testing import assertDataFrameEqual

from medallion import compute
from medallion.bundle import load_bundle
from medallion.devstack.fx_api import FxApiServer
from medallion.pipelines.ingest import ingest_fx
from medallion.settings import repo_root
from tests.integration.test_fx_slice_job import SEED, expected_gold, expected_silver

CATALOG = "spark_catalog"  # the local stand-in: Spark's session catalog, named in full
TABLES = ("bronze.fx_rates", "bronze.fx_rates_quarantine", "bronze.fx_rates_unknown_columns",
          "silver.fx_rates", "gold.fx_daily_change")


@dataclass
class CatalogLakehouse:
    """A storage root whose FX slice ran in catalog mode, and a session on its warm server."""

    root: Path
    remote: RemoteSession
    dates: list[date]
    runs: list[subprocess.CompletedProcess[str]]


def medallion(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, against this module's storage root."""
    runs = ["--runs-root", str(root.parent / "runs")] if args[0] == "jobs" else []
    return subprocess.run(
        [sys.executable, "-m", "medallion", *args, "--bundle-root", str(repo_root()),
         "--var", f"storage_root={root}", *runs],
        capture_output=True, text=True, timeout=900, check=False,
    )


@pytest.fixture(scope="module")
def catalog_lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CatalogLakehouse]:
    """Two days of FX rates landed, then built by the FX slice with ``catalog`` set."""
    root = tmp_path_factory.mktemp("catalog-mode") / "lakehouse"
    dates = [date(2026, 11, 2) + timedelta(days=offset) for offset in range(2)]
    with FxApiServer(seed=SEED) as fx_api:
        for day in dates:
            ingest_fx(root, day, fx_api.url)
    server = compute.pin_server(root)
    remote = RemoteSession.builder.remote(server.url).create()
    try:
        # What `databricks bundle deploy` does for a catalog: create the bundle's schemas in it.
        schemas = load_bundle(repo_root(), "dev").config["resources"]["schemas"]
        for schema in schemas.values():
            remote.sql(f"CREATE SCHEMA IF NOT EXISTS {CATALOG}.{schema['name']}")
        # Task by task (`--only` drops the order that the layers' DQ breakers give them, and
        # the breakers check every table of a layer): bronze and silver each day, then gold,
        # which is recomputed from all of silver.
        slice_runs = [(day, task) for day in dates
                      for task in ("bronze_fx_rates", "silver_fx_rates")]
        runs = [
            medallion(root, "jobs", "run", "build_analytics", "--param", f"run_date={day}",
                      "--param", f"catalog={CATALOG}", "--only", task)
            for day, task in [*slice_runs, (dates[-1], "gold_fx_daily_change")]
        ]
        yield CatalogLakehouse(root, remote, dates, runs)
    finally:
        remote.stop()
        compute.unpin_server(root)


def test_the_slice_succeeds_in_catalog_mode(catalog_lakehouse: CatalogLakehouse) -> None:
    for run in catalog_lakehouse.runs:
        assert run.returncode == 0, run.stdout + run.stderr


def test_tables_are_managed_tables_of_the_catalog_and_none_is_a_folder_of_the_root(
    catalog_lakehouse: CatalogLakehouse,
) -> None:
    remote, root = catalog_lakehouse.remote, catalog_lakehouse.root
    for table in TABLES:
        schema, name = table.split(".")
        details = {
            row["col_name"]: row["data_type"]
            for row in remote.sql(f"DESCRIBE TABLE EXTENDED {CATALOG}.{table}").collect()
        }
        assert (details["Name"], details["Type"], details["Is_managed_location"]) == (
            f"{CATALOG}.{schema}.{name}", "MANAGED", "true"
        )
        assert not (root / schema).exists()  # path mode would have put it at <root>/<schema>/
    # The only Delta tables are the stand-in catalog's managed ones (in the local session's
    # warehouse folder); the raw zone and the run state are files.
    warehouse = root / "_system" / "spark-warehouse"
    logs = sorted(str(log.parent.relative_to(warehouse)) for log in root.rglob("_delta_log"))
    assert logs == ["bronze.db/fx_rates", "bronze.db/fx_rates_quarantine",
                    "bronze.db/fx_rates_unknown_columns", "gold.db/fx_daily_change",
                    "silver.db/fx_rates"]


def test_catalog_tables_hold_what_the_oracle_says(
    spark: SparkSession, catalog_lakehouse: CatalogLakehouse
) -> None:
    remote, dates = catalog_lakehouse.remote, catalog_lakehouse.dates
    silver = remote.table(f"{CATALOG}.silver.fx_rates").select(
        "rate_date", "base", "currency", "rate")
    gold = remote.table(f"{CATALOG}.gold.fx_daily_change").select(
        "rate_date", "currency", "rate", "previous_rate_date", "previous_rate", "change_pct")
    assertDataFrameEqual(spark.createDataFrame(silver.toPandas(), expected_silver(spark, dates)
                                               .schema), expected_silver(spark, dates))
    assertDataFrameEqual(spark.createDataFrame(gold.toPandas(), expected_gold(spark, dates)
                                               .schema), expected_gold(spark, dates))


def test_grants_cover_the_schemas_the_tables_were_written_to(
    catalog_lakehouse: CatalogLakehouse,
) -> None:
    written = sorted({
        f"{row['namespace']}" for schema in ("bronze", "silver", "gold")
        for row in catalog_lakehouse.remote.sql(f"SHOW TABLES IN {CATALOG}.{schema}").collect()
    })
    result = medallion(catalog_lakehouse.root, "bundle", "grants", "-t", "dev",
                       "--var", f"catalog={CATALOG}")
    assert result.returncode == 0, result.stderr
    on_written = [line for line in result.stdout.splitlines()
                  if any(f"ON SCHEMA {CATALOG}.{schema} " in line for schema in written)]
    assert written == ["bronze", "gold", "silver"]
    assert on_written == [
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.bronze TO `data_engineer`;",
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.silver TO `data_engineer`;",
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.silver TO `data_analyst`;",
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.gold TO `data_engineer`;",
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.gold TO `data_analyst`;",
        f"GRANT USE SCHEMA, SELECT ON SCHEMA {CATALOG}.gold TO `ml`;",
    ]
