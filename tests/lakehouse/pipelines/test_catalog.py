"""The table catalog: a silver table added as one YAML file plus one function, in a temporary
catalog, is built by the generic step and seen by backfill and lineage, with no Python list to
edit."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.pipelines import StepResult
from medallion.lakehouse.pipelines.backfill import gold_tables_fed_by, silver_tables_fed_by
from medallion.lakehouse.pipelines.gold import gold_tables
from medallion.lakehouse.pipelines.silver import silver_tables, update_silver, update_silver_lineage
from medallion.lakehouse.settings import config_dir
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from tests.support.shapes import SNOWFLAKE_BRONZE

DAY = date(2026, 11, 2)
LANDED = datetime(2026, 11, 2, 23, 30)
META = (None, "raw/snowflake/orders/load_dt=2026-11-02/part-0.jsonl", LANDED, "bronze-run", DAY)
RETURNS_SPEC = """\
dataset: silver.fact_returns
layer: silver
sources: [bronze.snowflake_orders]
keys: [order_id]
sequence_by: updated_at
build:
  transform: tests.lakehouse.pipelines.test_catalog:returned_orders
  columns: [order_id, customer_id, refund, updated_at]
transformations:
  select_exp: ["order_id", "customer_id", "order_amount AS refund", "updated_at",
               "_rescued_data", "_source_file", "_ingest_ts", "_proc_date"]
expectations:
  expect_or_quarantine:
    refund_not_negative: "refund >= 0"
"""


def returned_orders(snowflake: DataFrame) -> DataFrame:
    """The new table's one function: the returned orders among Snowflake's."""
    return snowflake.where(sf.col("status") == "returned")


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's config with ``silver/fact_returns.yml`` added."""
    config = tmp_path / "config"
    shutil.copytree(config_dir(), config)
    (config / "dq" / "silver" / "fact_returns.yml").write_text(RETURNS_SPEC, encoding="utf-8")
    monkeypatch.setenv("MEDALLION_CONFIG_DIR", str(config))
    return config


def test_a_table_added_to_the_catalog_is_built_by_the_generic_silver_step(
    spark: SparkSession, tmp_path: Path, catalog: Path
) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path / "root"))
    snowflake = [
        ("ord_1", "cust_1", datetime(2026, 11, 2, 8), "returned", "USD", Decimal("10.00"),
         datetime(2026, 11, 2, 9), *META),
        # a later version of the same return wins
        ("ord_1", "cust_1", datetime(2026, 11, 2, 8), "returned", "USD", Decimal("12.00"),
         datetime(2026, 11, 2, 10), *META),
        ("ord_2", "cust_2", datetime(2026, 11, 2, 8), "returned", "EUR", Decimal("-1.00"),
         datetime(2026, 11, 2, 9), *META),
        ("ord_3", "cust_2", datetime(2026, 11, 2, 8), "shipped", "EUR", Decimal("5.00"),
         datetime(2026, 11, 2, 9), *META),
    ]  # fmt: skip
    lakehouse.write(local_frame(spark, snowflake, SNOWFLAKE_BRONZE), "bronze.snowflake_orders",
                    partition_by=["_proc_date"])

    result = update_silver(lakehouse, "silver.fact_returns", DAY, run_id="run-1")

    assert result == StepResult(
        "update_fact_returns", "silver.fact_returns", rows_in=3, rows_written=1,
        rows_quarantined=1, rows_dropped={"duplicate_record": 0, "superseded_by_newer_version": 1},
    )
    assertDataFrameEqual(
        lakehouse.read("silver.fact_returns").select("order_id", "customer_id", "refund"),
        [Row(order_id="ord_1", customer_id="cust_1", refund=Decimal("12.00"))],
    )
    assertDataFrameEqual(
        lakehouse.read("silver.fact_returns_quarantine").select("order_id"), [Row(order_id="ord_2")]
    )
    # Every list of tables is derived from the catalog: the new table is in each.
    assert [table.dataset for table in silver_tables()] == [
        "silver.dim_customer", "silver.fact_returns", "silver.fx_rates", "silver.fact_events",
        "silver.fact_orders",
    ]
    assert silver_tables_fed_by("bronze.snowflake_orders") == [
        "silver.fact_returns", "silver.fact_orders"
    ]
    assert gold_tables_fed_by(["silver.fact_returns"]) == []  # no gold table reads it yet
    assert gold_tables() == [
        "gold.fact_customer_360", "gold.fx_daily_change", "gold.orders_daily"
    ]
    lineage = update_silver_lineage(lakehouse, "silver.fact_returns")
    assert ([ref.name for ref in lineage.inputs], [ref.name for ref in lineage.outputs]) == (
        ["bronze.snowflake_orders"], ["silver.fact_returns", "silver.fact_returns_quarantine"]
    )
