"""Gold's Delta CHECK constraints: one per ``expect_or_fail`` rule, on new and older tables."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from pyspark.sql import SparkSession

from medallion.lakehouse.pipelines.gold import add_check_constraints, check_constraints
from medallion.lakehouse.quality.spec import spec_for
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from medallion.lakehouse.transforms.gold.orders_daily import ORDERS_DAILY_SCHEMA


def constraints(lakehouse: Lakehouse, table: str) -> dict[str, str]:
    rows = lakehouse.spark.sql(f"SHOW TBLPROPERTIES {table}").collect()
    prefix = "delta.constraints."
    return {r["key"][len(prefix) :]: r["value"] for r in rows if r["key"].startswith(prefix)}


def test_the_fail_rules_are_the_constraints() -> None:
    assert check_constraints(spec_for("gold.orders_daily")) == {
        "order_date_not_null": "order_date IS NOT NULL",
        "currency_not_null": "currency IS NOT NULL",
        "order_count_positive": "orders > 0",
        "revenue_not_negative": "revenue >= 0",
        "revenue_usd_not_negative": "revenue_usd >= 0",
    }


def test_a_table_made_without_constraints_gets_each_once(
    spark: SparkSession, tmp_path: Path
) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    spec = spec_for("gold.orders_daily")
    row = (date(2026, 11, 2), "EUR", 3, Decimal("30.00"), Decimal("32.50"))
    lakehouse.write(local_frame(spark, [row], ORDERS_DAILY_SCHEMA), "gold.orders_daily")
    assert constraints(lakehouse, "gold.orders_daily") == {}

    assert add_check_constraints(lakehouse, spec) == list(check_constraints(spec))
    assert constraints(lakehouse, "gold.orders_daily") == check_constraints(spec)
    assert add_check_constraints(lakehouse, spec) == []
