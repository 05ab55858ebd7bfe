"""orders_daily: orders and revenue per UTC order date and currency."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.transforms.gold.orders_daily import ORDERS_DAILY_SCHEMA, build_orders_daily
from tests.support.shapes import SILVER_FX, SILVER_ORDERS

D1, D2 = date(2026, 11, 2), date(2026, 11, 3)


def test_orders_count_all_and_revenue_sums_only_kept_orders(spark: SparkSession) -> None:
    t1, late = datetime(2026, 11, 2, 8, 0), datetime(2026, 11, 2, 23, 59, 59)
    next_day = datetime(2026, 11, 3, 0, 0)
    orders = spark.createDataFrame(
        [
            ("o1", "c1", t1, "placed", "EUR", Decimal("9.00"), t1),
            ("o2", "c1", late, "delivered", "EUR", Decimal("0.45"), late),
            ("o3", "c2", late, "cancelled", "EUR", Decimal("100.00"), late),
            ("o4", "c2", next_day, "returned", "EUR", Decimal("50.00"), next_day),
            ("o5", "c3", t1, "shipped", "USD", Decimal("1.99"), t1),
        ],
        SILVER_ORDERS,
    )
    fx_rates = spark.createDataFrame([(D1, "USD", "EUR", Decimal("0.9"))], SILVER_FX)

    daily = build_orders_daily(orders, fx_rates)

    # revenue_usd adds each order's rounded USD amount: 10.00 + 0.50
    expected = spark.createDataFrame(
        [
            (D1, "EUR", 3, Decimal("9.45"), Decimal("10.50")),
            (D2, "EUR", 1, Decimal("0.00"), Decimal("0.00")),
            (D1, "USD", 1, Decimal("1.99"), Decimal("1.99")),
        ],
        ORDERS_DAILY_SCHEMA,
    )
    assertDataFrameEqual(daily, expected, checkRowOrder=False)
