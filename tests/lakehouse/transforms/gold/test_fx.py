"""USD amounts: the as-of rate of the order's UTC date and exact half-up cents."""

from __future__ import annotations

import random
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext

from pyspark.sql import SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.gold.fx import unconverted_orders, usd_amount, usd_amounts
from tests.support.shapes import SILVER_FX, SILVER_ORDERS

FRIDAY, SATURDAY, MONDAY = date(2026, 11, 6), date(2026, 11, 7), date(2026, 11, 9)


def _order(order_id: str, currency: str, order_ts: datetime, amount: str) -> tuple[object, ...]:
    return (order_id, "cust_1", order_ts, "placed", currency, Decimal(amount), order_ts)


def test_weekend_order_takes_fridays_rate_and_usd_needs_no_row(spark: SparkSession) -> None:
    fx_rates = local_frame(
        spark,
        [
            (FRIDAY, "USD", "EUR", Decimal("0.90000000")),
            (MONDAY, "USD", "EUR", Decimal("0.80000000")),
        ],
        SILVER_FX,
    )
    orders = local_frame(
        spark,
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

    expected = local_frame(
        spark,
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
    frame = local_frame(
        spark,
        rows, "amount DECIMAL(18,2), rate DECIMAL(18,8), expected DECIMAL(18,2)"
    )

    mismatches = frame.where(
        ~usd_amount(sf.col("amount"), sf.col("rate")).eqNullSafe(sf.col("expected"))
    )

    assertDataFrameEqual(mismatches, local_frame(spark, [], frame.schema))


def test_unconverted_orders_are_the_ones_usd_amounts_finds_no_rate_for(
    spark: SparkSession,
) -> None:
    fx_rates = local_frame(
        spark,
        [
            (FRIDAY, "USD", "EUR", Decimal("0.90000000")),
            (SATURDAY, "USD", "GBP", None),  # no usable rate on Saturday...
            (MONDAY, "USD", "GBP", Decimal("0.75000000")),  # ...only from Monday
            (None, "USD", "JPY", Decimal("150.00000000")),  # undated: in force on any day
        ],
        SILVER_FX,
    )
    sunday = datetime(2026, 11, 8, 12, 0)
    orders = local_frame(
        spark,
        [
            _order("eur_friday", "EUR", datetime(2026, 11, 6, 0, 0), "1.00"),  # the rate's day
            _order("eur_thursday", "EUR", datetime(2026, 11, 5, 23, 59), "1.00"),  # before it
            _order("gbp_sunday", "GBP", sunday, "1.00"),  # a NULL rate does not count
            _order("gbp_monday", "GBP", datetime(2026, 11, 9, 0, 0), "1.00"),
            _order("jpy_sunday", "JPY", sunday, "1.00"),
            _order("chf_sunday", "CHF", sunday, "1.00"),  # no rate for the currency at all
            _order("usd_sunday", "USD", sunday, "1.00"),  # USD: no row needed
            ("usd_no_time", "cust_1", None, "placed", "USD", Decimal("1.00"), sunday),
            ("eur_no_time", "cust_1", None, "placed", "EUR", Decimal("1.00"), sunday),
            ("no_currency", "cust_1", sunday, "placed", None, Decimal("1.00"), sunday),
        ],
        SILVER_ORDERS,
    )

    unconverted = unconverted_orders(orders, fx_rates)
    without_rate = usd_amounts(orders, fx_rates).where(sf.col("usd_rate").isNull())

    expected = orders.where(sf.col("order_id").isin(
        "eur_thursday", "gbp_sunday", "chf_sunday", "usd_no_time", "eur_no_time", "no_currency"))
    assertDataFrameEqual(unconverted, expected, checkRowOrder=False)
    assertDataFrameEqual(unconverted, without_rate.select(*orders.columns), checkRowOrder=False)


def test_unconverted_orders_agree_with_usd_amounts_on_random_rows(spark: SparkSession) -> None:
    rng = random.Random(19)
    days = [date(2026, 11, day) for day in range(1, 15)]
    currencies = ["USD", "EUR", "GBP", "JPY", "CHF", None]
    fx_rates = local_frame(
        spark,
        [
            (rng.choice([*days, None]), "USD", rng.choice(currencies[1:4]),
             rng.choice([Decimal("1.25000000"), None]))
            for _ in range(12)
        ],
        SILVER_FX,
    )
    orders = local_frame(
        spark,
        [
            (f"o{number}", "cust_1",
             rng.choice([datetime(2026, 11, rng.randrange(1, 16), rng.randrange(24)), None]),
             "placed", rng.choice(currencies), Decimal("1.00"), None)
            for number in range(300)
        ],
        SILVER_ORDERS,
    )

    without_rate = usd_amounts(orders, fx_rates).where(sf.col("usd_rate").isNull())

    assertDataFrameEqual(unconverted_orders(orders, fx_rates),
                         without_rate.select(*orders.columns), checkRowOrder=False)
