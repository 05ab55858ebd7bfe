"""Gold ``fact_customer_360``: per customer, masked PII with order, value and event facts."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import (
    DecimalType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from medallion.lakehouse.transforms.gold import (
    GoldSlice,
    changed_rows,
    conform,
    counts_as_revenue,
    semi_join,
)
from medallion.lakehouse.transforms.gold.fx import repriced_orders, usd_amounts
from medallion.lakehouse.transforms.gold.masking import hash_id, mask_email, mask_name, mask_phone

KEYS: tuple[str, ...] = ("customer_id",)
CUSTOMER_360_SCHEMA = StructType(
    [
        StructField("customer_id", StringType()),
        StructField("name_masked", StringType()),
        StructField("email_masked", StringType()),
        StructField("phone_masked", StringType()),
        StructField("country", StringType()),
        StructField("lifecycle_stage", StringType()),
        StructField("order_count", LongType()),
        StructField("first_order_ts", TimestampType()),
        StructField("last_order_ts", TimestampType()),
        StructField("lifetime_value_usd", DecimalType(18, 2)),
        StructField("event_count", LongType()),
        StructField("session_count", LongType()),
        StructField("last_seen_ts", TimestampType()),
    ]
)
"""Column order and types of ``gold.fact_customer_360``."""


def aggregate_orders(orders: DataFrame, fx_rates: DataFrame) -> DataFrame:
    """Order facts per customer. Grain and key: one row per customer_id that has orders."""
    zero = sf.lit(0).cast(DecimalType(18, 2))
    return (
        usd_amounts(orders, fx_rates)
        .groupBy("customer_id")
        .agg(
            sf.count(sf.lit(1)).alias("order_count"),
            sf.min("order_ts").alias("first_order_ts"),
            sf.max("order_ts").alias("last_order_ts"),
            sf.coalesce(
                sf.sum(sf.when(counts_as_revenue(sf.col("status")), sf.col("amount_usd"))), zero
            ).alias("lifetime_value_usd"),
        )
    )


def aggregate_events(events: DataFrame) -> DataFrame:
    """Behavior facts per customer. Grain and key: one row per customer_id that has events."""
    return events.groupBy("customer_id").agg(
        sf.count(sf.lit(1)).alias("event_count"),
        sf.count_distinct("session_id").alias("session_count"),
        sf.max("event_ts").alias("last_seen_ts"),
    )


def build_customer_360(
    customers: DataFrame,
    orders: DataFrame,
    events: DataFrame,
    fx_rates: DataFrame,
    *,
    salt: str,
) -> DataFrame:
    """Gold ``fact_customer_360`` from silver dim_customer, fact_orders, fact_events, fx_rates.

    Grain and key: one row per customer of ``customers`` (silver.dim_customer.customer_id),
    keyed by its salted hash ``customer_id``. Columns: ``CUSTOMER_360_SCHEMA``. ``order_count``
    counts every order; ``lifetime_value_usd`` sums ``amount_usd`` over orders neither cancelled
    nor returned (orders without a known rate add nothing); counts and value are 0 and the
    timestamps NULL for a customer without orders or events. Orders and events of customers not
    in ``customers`` are left out (silver quarantines them as orphans).
    """
    facts = (
        customers.select("customer_id", "name", "email", "phone", "country", "lifecycle_stage")
        .join(aggregate_orders(orders, fx_rates), "customer_id", "left")
        .join(aggregate_events(events), "customer_id", "left")
    )
    return conform(
        facts.select(
            hash_id(sf.col("customer_id"), salt).alias("customer_id"),
            mask_name(sf.col("name")).alias("name_masked"),
            mask_email(sf.col("email")).alias("email_masked"),
            mask_phone(sf.col("phone")).alias("phone_masked"),
            "country",
            "lifecycle_stage",
            sf.coalesce("order_count", sf.lit(0)).alias("order_count"),
            "first_order_ts",
            "last_order_ts",
            sf.coalesce("lifetime_value_usd", sf.lit(0)).alias("lifetime_value_usd"),
            sf.coalesce("event_count", sf.lit(0)).alias("event_count"),
            sf.coalesce("session_count", sf.lit(0)).alias("session_count"),
            "last_seen_ts",
        ),
        CUSTOMER_360_SCHEMA,
    )


CUSTOMERS, ORDERS, EVENTS, RATES = (
    "silver.dim_customer", "silver.fact_orders", "silver.fact_events", "silver.fx_rates"
)


def affected_customers(
    changes: Mapping[str, DataFrame], silver: Mapping[str, DataFrame], *, salt: str
) -> GoldSlice:
    """The customers whose ``fact_customer_360`` row the silver changes can alter.

    A customer is touched by a change of its dim_customer row, of one of its orders (before or
    after: an order that moved customer touches both), by a new or changed event, and by a
    changed FX rate that can reprice one of its orders (``repriced_orders``). Their rows are
    rebuilt from all of their customers, orders and events rows; rates are read whole (a few
    hundred rows).
    """
    touched = [changed_rows(changes[name]).select("customer_id")
               for name in (CUSTOMERS, ORDERS, EVENTS)]
    touched.append(repriced_orders(silver[ORDERS], changed_rows(changes[RATES]))
                   .select("customer_id"))
    return GoldSlice(
        scope=functools.reduce(DataFrame.unionByName, touched)
        .where(sf.col("customer_id").isNotNull())
        .distinct(),
        keys=lambda scope: scope.select(hash_id(sf.col("customer_id"), salt).alias("customer_id")),
        sources=lambda scope: {
            **{name: semi_join(silver[name], scope) for name in (CUSTOMERS, ORDERS, EVENTS)},
            RATES: silver[RATES],
        },
    )

