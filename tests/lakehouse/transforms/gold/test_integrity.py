"""Table-level gold checks: duplicate keys, missing references, and the grain's counts."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.errors import ExpectationFailed
from medallion.lakehouse.pipelines.gold import check_integrity
from medallion.lakehouse.quality.spec import spec_for
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.gold import duplicate_keys, missing_references
from medallion.lakehouse.transforms.gold.masking import hash_id

SALT = "test-salt"


def test_duplicate_keys_lists_each_repeated_key_with_its_count(spark: SparkSession) -> None:
    frame = local_frame(
        spark,
        [("a", 1), ("a", 2), ("b", 1), (None, 1), (None, 2)], "customer_id STRING, n INT"
    )

    duplicates = duplicate_keys(frame, ["customer_id"])

    expected = local_frame(spark, [("a", 2), (None, 2)], "customer_id STRING, row_count BIGINT")
    assertDataFrameEqual(duplicates, expected, checkRowOrder=False)


def test_missing_references_returns_orphans_and_null_keys(spark: SparkSession) -> None:
    frame = local_frame(spark, [("a", 1), ("x", 2), (None, 3)], "customer_id STRING, n INT")
    reference = local_frame(spark, [("a",), ("b",)], "id STRING")

    missing = missing_references(frame, "customer_id", reference, "id")

    expected = local_frame(spark, [("x", 2), (None, 3)], "customer_id STRING, n INT")
    assertDataFrameEqual(missing, expected, checkRowOrder=False)


CUSTOMER_360 = "customer_id STRING, order_count BIGINT"
DAILY = "order_date DATE, currency STRING, orders BIGINT"


def customer_360_checks(
    spark: SparkSession, rows: list[tuple[object, ...]], dim_ids: list[str]
) -> tuple[int, int]:
    """``check_integrity`` of fact_customer_360 ``rows`` (ids hashed already) over ``dim_ids``."""
    dim = local_frame(spark, [(i,) for i in dim_ids], "customer_id STRING")
    hashed = [(hashed_id(spark, cid) if cid is not None else None, n) for cid, n in rows]
    gold = local_frame(spark, hashed, CUSTOMER_360)
    return check_integrity(gold, spec_for("gold.fact_customer_360"),
                           {"silver.dim_customer": dim}, SALT)


def hashed_id(spark: SparkSession, customer_id: object) -> str:
    row = spark.range(1).select(hash_id(sf.lit(customer_id), SALT).alias("id")).first()
    assert row is not None
    return str(row["id"])


def test_customer_360_integrity_counts_the_dim_customers_and_the_table_rows(
    spark: SparkSession,
) -> None:
    assert customer_360_checks(spark, [("c1", 2), ("c2", 0)], ["c1", "c2", "c3"]) == (3, 2)


def test_a_repeated_customer_fails_the_primary_key_with_the_count_and_the_key(
    spark: SparkSession,
) -> None:
    with pytest.raises(ExpectationFailed) as failure:
        customer_360_checks(spark, [("c1", 1), ("c1", 2), ("c2", 0)], ["c1", "c2"])

    message = str(failure.value)
    assert "gold.fact_customer_360: primary_key_unique failed" in message
    assert f"found 1 duplicate row(s), such as ('{hashed_id(spark, 'c1')}',)" in message


def test_a_customer_outside_dim_customer_fails_the_reference_naming_it(
    spark: SparkSession,
) -> None:
    with pytest.raises(ExpectationFailed) as failure:
        customer_360_checks(spark, [("c1", 1), ("c9", 2), (None, 0)], ["c1", "c2"])

    message = str(failure.value)
    assert "customer_in_dim_customer failed" in message
    assert "found 2 that do not" in message
    assert hashed_id(spark, "c9") in message


def test_orders_daily_integrity_sums_its_orders_against_silver(spark: SparkSession) -> None:
    daily = local_frame(
        spark,
        [(date(2026, 11, 2), "USD", 3), (date(2026, 11, 2), "EUR", 2)], DAILY
    )
    orders = local_frame(spark, [(f"o{i}",) for i in range(6)], "order_id STRING")

    counts = check_integrity(daily, spec_for("gold.orders_daily"),
                             {"silver.fact_orders": orders}, SALT)

    assert counts == (6, 5)  # the orders_daily grain is short one order: the caller compares


def test_a_repeated_day_and_currency_fails_orders_daily_primary_key(
    spark: SparkSession,
) -> None:
    daily = local_frame(
        spark,
        [(date(2026, 11, 2), "USD", 3), (date(2026, 11, 2), "USD", 1), (None, None, 1),
         (None, None, 1)], DAILY
    )
    with pytest.raises(ExpectationFailed, match=r"found 2 duplicate row\(s\)"):
        check_integrity(daily, spec_for("gold.orders_daily"),
                        {"silver.fact_orders": daily}, SALT)
