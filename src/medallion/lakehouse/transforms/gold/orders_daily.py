"""Gold ``orders_daily``: order count and revenue per UTC order date and currency."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import DateType, DecimalType, LongType, StringType, StructField, StructType

from medallion.lakehouse.transforms.gold import (
    GoldSlice,
    changed_rows,
    conform,
    counts_as_revenue,
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


SIGN = "_sign"  # +1: a row as it is now, -1: as it was, NULL: a current row to rebuild from
REPRICED = "_repriced"  # the row's day is rebuilt from its orders, not brought forward


def _order_day(orders: DataFrame) -> DataFrame:
    """The (order_date, currency) row each order counts on."""
    return orders.select(utc_date(sf.col("order_ts")).alias("order_date"), "currency")


def signed_changes(changes: DataFrame) -> DataFrame:
    """A change feed's rows with ``_sign``: 1 for a row as it is (insert, update postimage), -1
    for a row as it was (delete, update preimage). Their signed sums per key, over any run of
    versions, are what the versions changed."""
    now = sf.col("_change_type").isin("insert", "update_postimage")
    return changed_rows(changes).withColumn(SIGN, sf.when(now, 1).otherwise(-1))


def affected_days(changes: Mapping[str, DataFrame], silver: Mapping[str, DataFrame]) -> GoldSlice:
    """The (order_date, currency) rows of ``orders_daily`` the silver changes alter, and how.

    A row whose FX rate a changed rate can reprice is rebuilt from all of its orders
    (``repriced_orders``: the condition is on the row's day and currency). Every other row a
    changed order touches (before and after the change: an order whose day or currency changed
    leaves one row and joins another) is brought forward: the changed orders' signed count and
    amounts are added to it, in USD at the rate the row was built with, which did not change. A
    row left with no orders is deleted. The scope: the repriced rows' orders and the signed
    change rows, flagged ``_repriced`` when their day is rebuilt; one scan of the orders in all;
    rates are read whole.
    """
    orders, rates = silver[ORDERS], silver[RATES]
    rate_changes = changed_rows(changes[RATES])
    signed = signed_changes(changes[ORDERS]).select(*orders.columns, SIGN)
    parts = [  # (rows, their SIGN, whether their day is repriced)
        repriced_orders(orders, rate_changes).withColumn(SIGN, sf.lit(None).cast("int")),
        repriced_orders(signed, rate_changes),  # their day is rebuilt, but it is touched
        repriced_orders(signed, rate_changes, how="left_anti"),
    ]
    flagged = [part.withColumn(REPRICED, sf.lit(repriced))
               for part, repriced in zip(parts, (True, True, False), strict=True)]
    return GoldSlice(
        scope=functools.reduce(DataFrame.unionByName, flagged),
        keys=lambda scope: _order_day(scope).distinct(),
        sources=lambda scope: {
            ORDERS: scope.where(sf.coalesce(sf.col(SIGN), sf.lit(1)) > 0).drop(SIGN, REPRICED),
            RATES: rates,
        },
        rows=lambda scope, current: _brought_forward(scope, current, rates),
    )


def _brought_forward(scope: DataFrame, current: DataFrame, rates: DataFrame) -> DataFrame:
    """The rows of the days in ``scope`` (``affected_days``): rebuilt from the orders of a
    repriced day, or ``current``'s row plus the signed changes of the others."""
    rebuilt = build_orders_daily(scope.where(sf.col(SIGN).isNull()), rates)
    counted, sign = counts_as_revenue(sf.col("status")), sf.col(SIGN)

    def signed(amount: str) -> Column:
        return sf.when(counted, sf.when(sign > 0, sf.col(amount)).otherwise(-sf.col(amount)))

    changed = (
        usd_amounts(scope.where(~sf.col(REPRICED)), rates)
        .withColumn("order_date", utc_date(sf.col("order_ts")))
        .groupBy("order_date", "currency")
        .agg(
            sf.sum(sign).alias("orders"),
            sf.sum(signed("order_amount")).alias("revenue"),
            sf.sum(signed("amount_usd")).alias("revenue_usd"),
            sf.lit(False).alias("_rebuilt"),
        )
    )
    # A repriced day is rebuilt, also one whose orders all left it (no row to rebuild: deleted).
    marks = _order_day(scope.where(sf.col(REPRICED))).withColumn("_rebuilt", sf.lit(True))
    # One group per day: its current row, its changes, and whether it is rebuilt instead.
    zero = sf.lit(0).cast(DecimalType(18, 2))
    summed = (
        current.withColumn("_rebuilt", sf.lit(False))
        .unionByName(changed)
        .unionByName(marks, allowMissingColumns=True)
        .groupBy("order_date", "currency")
        .agg(
            sf.sum("orders").alias("orders"),
            sf.coalesce(sf.sum("revenue"), zero).alias("revenue"),
            sf.coalesce(sf.sum("revenue_usd"), zero).alias("revenue_usd"),
            sf.max("_rebuilt").alias("_rebuilt"),
        )
        .where(~sf.col("_rebuilt") & (sf.col("orders") > 0))
    )
    return rebuilt.unionByName(conform(summed, ORDERS_DAILY_SCHEMA))
