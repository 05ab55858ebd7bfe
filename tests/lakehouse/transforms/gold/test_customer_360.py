"""fact_customer_360: one row per customer, masked, with order, value and event facts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.gold.customer_360 import CUSTOMER_360_SCHEMA, build_customer_360
from tests.support.shapes import SILVER_CUSTOMERS, SILVER_EVENTS, SILVER_FX, SILVER_ORDERS

SALT = "pepper"
DAY = date(2026, 11, 2)
MODIFIED = datetime(2026, 10, 1, 12, 0)
T1, T2, T3 = datetime(2026, 11, 2, 8, 0), datetime(2026, 11, 2, 9, 0), datetime(2026, 11, 2, 10, 0)


def _hashed(customer_id: str) -> str:
    return hashlib.sha256(f"{SALT}:{customer_id}".encode()).hexdigest()


def _build(spark: SparkSession) -> DataFrame:
    customers = local_frame(
        spark,
        [
            ("c1", "Ada Lopez", "ada@example.com", "+49 301 5550123", "DE", "customer", MODIFIED),
            ("c2", "Ben Kim", "ben@mail.example", "+1 212 5550199", "US", "lead", MODIFIED),
        ],
        SILVER_CUSTOMERS,
    )
    orders = local_frame(
        spark,
        [
            ("o1", "c1", T1, "delivered", "EUR", Decimal("9.00"), T1),
            ("o2", "c1", T2, "cancelled", "EUR", Decimal("4.50"), T2),
            ("o3", "c1", T2, "returned", "USD", Decimal("5.00"), T2),
            ("o4", "c1", T3, "shipped", "USD", Decimal("2.50"), T3),
        ],
        SILVER_ORDERS,
    )
    events = local_frame(
        spark,
        [
            ("e1", "sess_a", "c1", "page_view", T1, "/", "mobile"),
            ("e2", "sess_a", "c1", "search", T2, "/search", "mobile"),
            ("e3", "sess_b", "c1", "page_view", T3, "/", "desktop"),
        ],
        SILVER_EVENTS,
    )
    fx_rates = local_frame(spark, [(DAY, "USD", "EUR", Decimal("0.9"))], SILVER_FX)
    return build_customer_360(customers, orders, events, fx_rates, salt=SALT)


@pytest.fixture(scope="module")
def gold(spark: SparkSession) -> Iterator[DataFrame]:
    """The table built once and cached: each test looks at one behaviour of the same build."""
    built = _build(spark).cache()
    yield built
    built.unpersist()


def test_one_masked_row_per_customer_with_its_facts(spark: SparkSession, gold: DataFrame) -> None:
    expected = local_frame(
        spark,
        [
            (
                _hashed("c1"),
                "A***",
                "a***@example.com",
                "***23",
                "DE",
                "customer",
                4,
                T1,
                T3,
                Decimal("12.50"),
                3,
                2,
                T3,
            ),
            (
                _hashed("c2"),
                "B***",
                "b***@mail.example",
                "***99",
                "US",
                "lead",
                0,
                None,
                None,
                Decimal("0.00"),
                0,
                0,
                None,
            ),
        ],
        CUSTOMER_360_SCHEMA,
    )
    assertDataFrameEqual(gold, expected, checkRowOrder=False)


def test_lifetime_value_leaves_out_cancelled_and_returned_orders(
    spark: SparkSession, gold: DataFrame
) -> None:
    customer = gold.where(sf.col("customer_id") == _hashed("c1"))

    # 9.00 EUR / 0.9 + 2.50 USD; the cancelled 4.50 EUR and returned 5.00 USD are out
    expected = local_frame(
        spark,
        [(4, Decimal("12.50"))], "order_count BIGINT, lifetime_value_usd DECIMAL(18,2)"
    )
    assertDataFrameEqual(customer.select("order_count", "lifetime_value_usd"), expected)


def test_customer_without_orders_or_events_has_zero_counts_and_value(
    spark: SparkSession, gold: DataFrame
) -> None:
    customer = gold.where(sf.col("customer_id") == _hashed("c2"))

    facts = customer.select(
        "order_count", "lifetime_value_usd", "event_count", "session_count", "last_seen_ts"
    )

    expected = local_frame(
        spark,
        [(0, Decimal("0.00"), 0, 0, None)],
        "order_count BIGINT, lifetime_value_usd DECIMAL(18,2), event_count BIGINT, "
        "session_count BIGINT, last_seen_ts TIMESTAMP",
    )
    assertDataFrameEqual(facts, expected)
