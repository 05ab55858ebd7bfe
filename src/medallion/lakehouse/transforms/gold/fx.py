"""Order amounts in USD: the as-of FX rate of each order's UTC date and an exactly rounded amount.

``silver.fx_rates`` quotes ``rate`` units of a currency per 1 USD, so USD = amount / rate. The
amount is rounded half-up to cents from the exact quotient. Spark's ``round(amount / rate, 2)``
is not exact: the decimal division is first rounded to 14 places (DECIMAL(38,14) for
DECIMAL(18,2) / DECIMAL(18,8)), and a quotient a hair below a half cent can become exactly a half
cent there and round up. Integer division of exact decimals never rounds.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as sf
from pyspark.sql.types import DateType, DecimalType, IntegerType

RATE_TYPE = DecimalType(18, 8)
AMOUNT_TYPE = DecimalType(18, 2)
BASE_CURRENCY = "USD"
SECONDS_PER_DAY = 86_400


def utc_date(moment: Column) -> Column:
    """The UTC calendar date of a timestamp, whatever the session time zone."""
    # to_date() uses the session time zone; epoch seconds do not.
    days = sf.floor(sf.unix_seconds(moment) / SECONDS_PER_DAY).cast(IntegerType())
    return sf.date_from_unix_date(days)


def usd_amount(amount: Column, rate: Column) -> Column:
    """``amount / rate`` rounded half-up (away from zero) to cents, exactly, as DECIMAL(18,2)."""
    # Half-up cents of |a| / r = floor((200 * |a| + r) / (2 * r)); `div` is exact integral
    # division of decimals (no intermediate rounding) and floors for these non-negative operands.
    magnitude = sf.abs(amount)
    cents = sf.call_function("div", magnitude * 200 + rate, rate * 2)
    unsigned = (cents.cast(DecimalType(20, 0)) / 100).cast(AMOUNT_TYPE)
    return sf.when(amount < 0, -unsigned).otherwise(unsigned)


def as_of_rates(days: DataFrame, fx_rates: DataFrame) -> DataFrame:
    """The rate in force on each (currency, day): that day's, else the latest earlier one.

    Grain and key: one row per distinct (currency, ``_fx_date``) of ``days``. Columns: currency,
    _fx_date DATE, usd_rate DECIMAL(18,8) (NULL when the currency has no rate on or before the
    day; 1 for USD with or without a row).
    """
    wanted = days.select("currency", "_fx_date").distinct()
    # One pass over the rates and the wanted days together, instead of a join on
    # rate_date <= day that grows with days x rate dates per currency: a day takes the last
    # non-NULL rate at or before it, and a rate row sorts before a wanted day of the same date.
    timeline = fx_rates.select(
        "currency",
        sf.col("rate_date").alias("_fx_date"),
        sf.col("rate").cast(RATE_TYPE).alias("rate"),
        sf.lit(0).alias("_is_wanted"),
    ).unionByName(
        wanted.select(
            "currency",
            "_fx_date",
            sf.lit(None).cast(RATE_TYPE).alias("rate"),
            sf.lit(1).alias("_is_wanted"),
        )
    )
    up_to_here = (
        Window.partitionBy("currency")
        .orderBy("_fx_date", "_is_wanted")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    in_force = sf.last("rate", ignorenulls=True).over(up_to_here)
    return (
        timeline.withColumn(
            "usd_rate",
            sf.when(sf.col("currency") == BASE_CURRENCY, sf.lit(1).cast(RATE_TYPE)).otherwise(
                in_force
            ),
        )
        .where(sf.col("_is_wanted") == 1)
        .select("currency", "_fx_date", "usd_rate")
    )


def usd_amounts(orders: DataFrame, fx_rates: DataFrame) -> DataFrame:
    """``orders`` with ``usd_rate`` DECIMAL(18,8) and ``amount_usd`` DECIMAL(18,2) added.

    Grain and key: as ``orders`` (one row per order_id). ``usd_rate`` is the rate of the order's
    UTC date (of ``order_ts``), else the latest earlier rate date of its currency; USD is 1 even
    without a row. ``amount_usd`` = order_amount / usd_rate rounded half-up to cents; both NULL
    when no rate is known (no rate yet, unknown currency, NULL order_ts).
    """
    dated = orders.withColumn("_fx_date", utc_date(sf.col("order_ts")).cast(DateType()))
    # The lookup is at most currencies x days rows: broadcast it rather than shuffle the orders.
    rates = sf.broadcast(as_of_rates(dated, fx_rates))
    return (
        dated.join(rates, ["currency", "_fx_date"], "left")
        .withColumn("amount_usd", usd_amount(sf.col("order_amount"), sf.col("usd_rate")))
        .select(*orders.columns, "usd_rate", "amount_usd")
    )


def unconverted_orders(orders: DataFrame, fx_rates: DataFrame) -> DataFrame:
    """The orders ``usd_amounts`` finds no rate for (its ``usd_rate`` NULL), and their columns.

    The same orders, found without the as-of window: a currency has a rate on or before a day
    exactly when its earliest dated rate (or an undated one, which the window sorts first) is
    not after that day. So each currency's earliest rate date is joined to the orders (a few
    rows, broadcast) and compared: one scan of the orders, no shuffle. An order with no
    currency or no ``order_ts`` never converts (``usd_amounts`` joins on both); USD needs no
    rate. Grain: as ``orders``.
    """
    known = (
        fx_rates.where(sf.col("rate").cast(RATE_TYPE).isNotNull())
        .groupBy("currency")
        .agg(sf.min("rate_date").alias("_first_rate_date"),
             sf.bool_or(sf.col("rate_date").isNull()).alias("_undated_rate"))
    )
    day = utc_date(sf.col("order_ts"))
    has_rate = (
        (sf.col("currency") == sf.lit(BASE_CURRENCY))
        | sf.col("_undated_rate")
        | (sf.col("_first_rate_date") <= day)
    )
    return (
        orders.join(sf.broadcast(known), "currency", "left")
        .where(sf.col("currency").isNull() | day.isNull() | ~sf.coalesce(has_rate, sf.lit(False)))
        .select(*orders.columns)
    )


def repriced_orders(
    orders: DataFrame, rate_changes: DataFrame, *, how: str = "left_semi"
) -> DataFrame:
    """The orders a change of rates can reprice: of a changed rate's currency, dated on or after
    its ``rate_date`` (the as-of rate of those days may be that rate now, or have been before).
    With ``how="left_anti"``, the others: orders whose rate is the same before and after.

    Grain: as ``orders``. ``rate_changes`` has ``currency`` and ``rate_date`` (a day's few rows:
    broadcast).
    """
    changed = sf.broadcast(rate_changes.select(
        sf.col("currency").alias("_changed_currency"), sf.col("rate_date").alias("_changed_date")
    ).distinct())
    order_date = utc_date(sf.col("order_ts"))
    return orders.join(
        changed,
        (orders["currency"] == changed["_changed_currency"])
        & (order_date >= changed["_changed_date"]),
        how,
    )

