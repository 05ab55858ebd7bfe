"""USD amounts: the as-of rate of the order's UTC date and exact half-up cents."""

from __future__ import annotations

import random
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext

from pyspark.sql import SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.transforms.gold.fx import usd_amount, usd_amounts
from tests.support.shapes import SILVER_FX, SILVER_ORDERS

FRIDAY, SATURDAY, MONDAY = date(2026, 11, 6), date(2026, 11, 7), date(2026, 11, 9)


def _order(order_id: str, currency: str, order_ts: datetime, amount: str) -> tuple[object, ...]:
    return (order_id, "cust_1", order_ts, "placed", currency, Decimal(amount), order_ts)


def test_weekend_order_takes_fridays_rate_and_usd_needs_no_row(spark: SparkSession) -> None:
    fx_rates = spark.createDataFrame(
        [
            (FRIDAY, "USD", "EUR", Decimal("0.90000000")),
            (MONDAY, "USD", "EUR", Decimal("0.80000000")),
        ],
        SILVER_FX,
    )
    orders = spark.createDataFrame(
        [
            _order("o1", "EUR", datetime(2026, 11, 6, 23, 59), "9.00"),  # Friday: same day
            _order("o2", "EUR", datetime(2026, 11, 8, 12, 0), "9.00"),  # Sunday: Friday's
            _order("o3", "EUR", datetime(2026, 11, 9, 0, 0), "9.00"),  # Monday: Monday's
            _order("o4", "EUR", datetime(2026, 11, 5, 12, 0), "9.00"),  # before any rate
            _order("o5", "USD", datetime(2026, 11, 8, 12, 0), "12.34"),  # USD: 1, no row
        ],
        SILVER_ORDERS,
    )

    converted = usd_amounts(orders, fx_rates).select("order_id", "usd_rate", "amount_usd")

    expected = spark.createDataFrame(
        [
            ("o1", Decimal("0.9"), Decimal("10.00")),
            ("o2", Decimal("0.9"), Decimal("10.00")),
            ("o3", Decimal("0.8"), Decimal("11.25")),
            ("o4", None, None),
            ("o5", Decimal("1"), Decimal("12.34")),
        ],
        "order_id STRING, usd_rate DECIMAL(18,8), amount_usd DECIMAL(18,2)",
    )
    assertDataFrameEqual(converted, expected, checkRowOrder=False)


def test_usd_amount_is_exact_half_up_rounding(spark: SparkSession) -> None:
    rng = random.Random(11)
    pairs = [
        (Decimal(rng.randrange(-(10**9), 10**9)) / 100, Decimal(rng.randrange(1, 10**13)) / 10**8)
        for _ in range(3000)
    ]
    # Exactly half a cent (rounds away from zero), and a quotient 1e-21 below a half cent:
    # Spark's round(amount / rate, 2) rounds the latter up (its division keeps 14 places).
    pairs += [
        (Decimal("0.05"), Decimal("2.00000000")),
        (Decimal("-0.05"), Decimal("2.00000000")),
        (Decimal("4761904749.98"), Decimal("49999.99999979")),
    ]
    with localcontext() as context:
        context.prec = 60
        rows = [
            (amount, rate, (amount / rate).quantize(Decimal("0.01"), ROUND_HALF_UP))
            for amount, rate in pairs
        ]
    frame = spark.createDataFrame(
        rows, "amount DECIMAL(18,2), rate DECIMAL(18,8), expected DECIMAL(18,2)"
    )

    mismatches = frame.where(
        ~usd_amount(sf.col("amount"), sf.col("rate")).eqNullSafe(sf.col("expected"))
    )

    assertDataFrameEqual(mismatches, spark.createDataFrame([], frame.schema))
