"""Gold ``orders_daily``: order count and revenue per UTC order date and currency."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import DateType, DecimalType, LongType, StringType, StructField, StructType

from medallion.lakehouse.transforms.gold import (
    GoldSlice,
    changed_rows,
    conform,
    counts_as_revenue,
    semi_join,
)
from medallion.lakehouse.transforms.gold.fx import repriced_orders, usd_amounts, utc_date

KEYS: tuple[str, ...] = ("order_date", "currency")
ORDERS_DAILY_SCHEMA = StructType(
    [
        StructField("order_date", DateType()),
        StructField("currency", StringType()),
        StructField("orders", LongType()),
        StructField("revenue", DecimalType(18, 2)),
        StructField("revenue_usd", DecimalType(18, 2)),
    ]
)
"""Column order and types of ``gold.orders_daily``."""


def build_orders_daily(orders: DataFrame, fx_rates: DataFrame) -> DataFrame:
    """Gold ``orders_daily`` from silver fact_orders and fx_rates.

    Grain and key: one row per (order_date, currency), order_date = UTC date of order_ts.
    Columns: ``ORDERS_DAILY_SCHEMA``. ``orders`` counts every order; ``revenue`` (order currency)
    and ``revenue_usd`` sum the orders neither cancelled nor returned, 0.00 when there are none;
    ``revenue_usd`` adds the per-order rounded ``amount_usd`` (as ``lifetime_value_usd`` does),
    so the two gold tables agree to the cent.
    """
    zero = sf.lit(0).cast(DecimalType(18, 2))
    counted = counts_as_revenue(sf.col("status"))
    daily = (
        usd_amounts(orders, fx_rates)
        .withColumn("order_date", utc_date(sf.col("order_ts")))
        .groupBy("order_date", "currency")
        .agg(
            sf.count(sf.lit(1)).alias("orders"),
            sf.coalesce(sf.sum(sf.when(counted, sf.col("order_amount"))), zero).alias("revenue"),
            sf.coalesce(sf.sum(sf.when(counted, sf.col("amount_usd"))), zero).alias("revenue_usd"),
        )
    )
    return conform(daily, ORDERS_DAILY_SCHEMA)


ORDERS, RATES = "silver.fact_orders", "silver.fx_rates"


def _order_day(orders: DataFrame) -> DataFrame:
    """The (order_date, currency) row each order counts on."""
    return orders.select(utc_date(sf.col("order_ts")).alias("order_date"), "currency")


def affected_days(changes: Mapping[str, DataFrame], silver: Mapping[str, DataFrame]) -> GoldSlice:
    """The (order_date, currency) rows of ``orders_daily`` the silver changes can alter.

    Touched: the row of each changed order, before and after the change (an order whose date or
    currency changed leaves one row and joins another), and the rows of orders a changed FX rate
    can reprice. They are rebuilt from all of their orders; rates are read whole.
    """
    orders = silver[ORDERS]
    dated = orders.withColumn("_order_date", utc_date(sf.col("order_ts")))
    return GoldSlice(
        scope=functools.reduce(DataFrame.unionByName, [
            _order_day(changed_rows(changes[ORDERS])),
            _order_day(repriced_orders(orders, changed_rows(changes[RATES]))),
        ]).distinct(),
        keys=lambda scope: scope,
        sources=lambda scope: {
            ORDERS: semi_join(dated, scope.withColumnRenamed("order_date", "_order_date"))
            .drop("_order_date"),
            RATES: silver[RATES],
        },
    )

