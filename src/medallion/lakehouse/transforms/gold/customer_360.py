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
    return _customer_rows(
        customers, aggregate_orders(orders, fx_rates), aggregate_events(events), salt
    )


def _customer_rows(
    customers: DataFrame, order_facts: DataFrame, event_facts: DataFrame, salt: str
) -> DataFrame:
    """One gold row per customer of ``customers``: masked, with its order and event facts
    (``aggregate_orders``' and ``aggregate_events``' columns, by the raw customer_id)."""
    facts = (
        customers.select("customer_id", "name", "email", "phone", "country", "lifecycle_stage")
        .join(order_facts, "customer_id", "left")
        .join(event_facts, "customer_id", "left")
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


RECOUNT = "_recount_events"  # in the scope: the customer's events are aggregated again


def affected_customers(
    changes: Mapping[str, DataFrame], silver: Mapping[str, DataFrame], *, salt: str
) -> GoldSlice:
    """The customers whose ``fact_customer_360`` row the silver changes can alter, and how.

    A customer is touched by a change of its dim_customer row, of one of its orders (before or
    after: an order that moved customer touches both), by a new or changed event, and by a
    changed FX rate that can reprice one of its orders (``repriced_orders``). Its row is built
    again from its customer row and all of its orders (rates are read whole: a few hundred
    rows). Its event facts are brought forward from its current row when its only event changes
    are new events (``_events_brought_forward``); they are aggregated again from all of its
    events when an event of it was updated or deleted, or it has no row yet.
    """
    events = changed_rows(changes[EVENTS])
    touched = [changed_rows(changes[name]).select("customer_id") for name in (CUSTOMERS, ORDERS)]
    touched.append(events.select("customer_id"))
    touched.append(repriced_orders(silver[ORDERS], changed_rows(changes[RATES]))
                   .select("customer_id"))
    recount = sf.max(sf.col("_change_type") != "insert")
    scope = (
        functools.reduce(DataFrame.unionByName, touched)
        .where(sf.col("customer_id").isNotNull())
        .distinct()
        .join(events.groupBy("customer_id").agg(recount.alias(RECOUNT)), "customer_id", "left")
        .select("customer_id", sf.coalesce(RECOUNT, sf.lit(False)).alias(RECOUNT))
    )
    narrowed = {name: lambda scope, name=name: semi_join(silver[name], scope.select("customer_id"))
                for name in (CUSTOMERS, ORDERS)}
    return GoldSlice(
        scope=scope,
        keys=lambda scope: scope.select(hash_id(sf.col("customer_id"), salt).alias("customer_id")),
        sources=lambda scope: {ORDERS: narrowed[ORDERS](scope), RATES: silver[RATES]},
        rows=lambda scope, current: _customer_rows(
            narrowed[CUSTOMERS](scope),
            aggregate_orders(narrowed[ORDERS](scope), silver[RATES]),
            _event_facts(scope, current, events, silver[EVENTS], salt),
            salt,
        ),
    )


def _event_facts(
    scope: DataFrame, current: DataFrame, changes: DataFrame, events: DataFrame, salt: str
) -> DataFrame:
    """``aggregate_events``' columns for the customers of ``scope`` (``affected_customers``).

    A customer whose event changes are all new events (or who has none) and who has a
    ``current`` row: that row's facts brought forward. ``event_count`` adds the new events,
    ``last_seen_ts`` takes the later of the two, ``session_count`` adds the new events' sessions
    no other event of the customer is in (counted in ``events``: for each such session, the
    customer's events in it are all new). Every other customer: aggregated again from ``events``.
    """
    hashed = scope.withColumn("_key", hash_id(sf.col("customer_id"), salt))
    carried = hashed.where(~sf.col(RECOUNT)).join(
        current.select(sf.col("customer_id").alias("_key"), "event_count", "session_count",
                       "last_seen_ts"), "_key").drop("_key", RECOUNT)
    again = hashed.join(carried.select("customer_id"), "customer_id", "left_anti")
    added = (
        changes.where(sf.col("_change_type") == "insert")
        .join(carried.select("customer_id"), "customer_id", "left_semi")
        .groupBy("customer_id", "session_id")
        .agg(sf.count(sf.lit(1)).alias("_added"), sf.max("event_ts").alias("_last"))
    )
    in_sessions = (
        semi_join(events.select("customer_id", "session_id"), added.select("customer_id",
                                                                           "session_id"))
        .groupBy("customer_id", "session_id")
        .agg(sf.count(sf.lit(1)).alias("_all"))
    )
    # A NULL session is no session (count_distinct leaves it out).
    new_session = (sf.col("_all") == sf.col("_added")) & sf.col("session_id").isNotNull()
    per_customer = (
        added.join(in_sessions, ["customer_id", "session_id"], "left")
        .groupBy("customer_id")
        .agg(
            sf.sum("_added").alias("_added"),
            sf.count_if(new_session).alias("_new_sessions"),
            sf.max("_last").alias("_last"),
        )
    )
    brought_forward = carried.join(per_customer, "customer_id", "left").select(
        "customer_id",
        (sf.coalesce("event_count", sf.lit(0)) + sf.coalesce("_added", sf.lit(0)))
        .alias("event_count"),
        (sf.coalesce("session_count", sf.lit(0)) + sf.coalesce("_new_sessions", sf.lit(0)))
        .alias("session_count"),
        sf.greatest("last_seen_ts", "_last").alias("last_seen_ts"),
    )
    return brought_forward.unionByName(
        aggregate_events(semi_join(events, again.select("customer_id")))
    )
