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

from medallion.lakehouse.transforms.gold import semi_join
from medallion.lakehouse.transforms.gold.customer_360 import (
    CUSTOMER_360_SCHEMA,
    RECOUNT,
    affected_customers,
    build_customer_360,
)
from tests.support.shapes import SILVER_CUSTOMERS, SILVER_EVENTS, SILVER_FX, SILVER_ORDERS

SALT = "pepper"
DAY = date(2026, 11, 2)
MODIFIED = datetime(2026, 10, 1, 12, 0)
T1, T2, T3 = datetime(2026, 11, 2, 8, 0), datetime(2026, 11, 2, 9, 0), datetime(2026, 11, 2, 10, 0)


def _hashed(customer_id: str) -> str:
    return hashlib.sha256(f"{SALT}:{customer_id}".encode()).hexdigest()


def _build(spark: SparkSession) -> DataFrame:
    customers = spark.createDataFrame(
        [
            ("c1", "Ada Lopez", "ada@example.com", "+49 301 5550123", "DE", "customer", MODIFIED),
            ("c2", "Ben Kim", "ben@mail.example", "+1 212 5550199", "US", "lead", MODIFIED),
        ],
        SILVER_CUSTOMERS,
    )
    orders = spark.createDataFrame(
        [
            ("o1", "c1", T1, "delivered", "EUR", Decimal("9.00"), T1),
            ("o2", "c1", T2, "cancelled", "EUR", Decimal("4.50"), T2),
            ("o3", "c1", T2, "returned", "USD", Decimal("5.00"), T2),
            ("o4", "c1", T3, "shipped", "USD", Decimal("2.50"), T3),
        ],
        SILVER_ORDERS,
    )
    events = spark.createDataFrame(
        [
            ("e1", "sess_a", "c1", "page_view", T1, "/", "mobile"),
            ("e2", "sess_a", "c1", "search", T2, "/search", "mobile"),
            ("e3", "sess_b", "c1", "page_view", T3, "/", "desktop"),
        ],
        SILVER_EVENTS,
    )
    fx_rates = spark.createDataFrame([(DAY, "USD", "EUR", Decimal("0.9"))], SILVER_FX)
    return build_customer_360(customers, orders, events, fx_rates, salt=SALT)


@pytest.fixture(scope="module")
def gold(spark: SparkSession) -> Iterator[DataFrame]:
    """The table built once and cached: each test looks at one behaviour of the same build."""
    built = _build(spark).cache()
    yield built
    built.unpersist()


def test_one_masked_row_per_customer_with_its_facts(spark: SparkSession, gold: DataFrame) -> None:
    expected = spark.createDataFrame(
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
    expected = spark.createDataFrame(
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

    expected = spark.createDataFrame(
        [(0, Decimal("0.00"), 0, 0, None)],
        "order_count BIGINT, lifetime_value_usd DECIMAL(18,2), event_count BIGINT, "
        "session_count BIGINT, last_seen_ts TIMESTAMP",
    )
    assertDataFrameEqual(facts, expected)


def _customer(key: str, name: str) -> tuple[object, ...]:
    return (key, name, f"{key}@example.com", "+1 212 5550199", "US", "customer", MODIFIED)


def _event(key: str, session: str | None, customer: str, at: datetime) -> tuple[object, ...]:
    return (key, session, customer, "page_view", at, "/", "mobile")


def _changed(rows: list[tuple[object, ...]], kind: str) -> list[tuple[object, ...]]:
    return [(*row, kind) for row in rows]


def test_rows_brought_forward_by_the_changes_equal_their_rebuild(spark: SparkSession) -> None:
    """c1 gets new events, one in a session it had and one in a new session: its event facts
    are brought forward. c2's event is updated and c3 is a new customer: theirs are counted
    again. c4's name changes, c5 is deleted, c6 gets a new order; c7 is untouched."""
    customers = [_customer(key, f"Name {key}") for key in ("c1", "c2", "c4", "c5", "c6", "c7")]
    events = [_event("e1", "s1", "c1", T1), _event("e2", "s2", "c1", T1),
              _event("e3", "s3", "c2", T1), _event("e4", "s4", "c2", T2),
              _event("e5", "s5", "c7", T1), _event("e6", None, "c4", T1)]
    orders = [("o1", "c6", T1, "placed", "USD", Decimal("2.00"), T1)]
    new_customers = [("c3", "Name c3"), ("c4", "Renamed")]
    new_events = [_event("e7", "s1", "c1", T3), _event("e8", "s9", "c1", T2),
                  _event("e9", "s8", "c3", T2)]
    e4_moved = _event("e4", "s3", "c2", T2)
    new_order = ("o2", "c6", T2, "placed", "USD", Decimal("3.00"), T2)
    rates = spark.createDataFrame([(DAY, "USD", "EUR", Decimal("0.9"))], SILVER_FX)
    silver = {
        "silver.dim_customer": spark.createDataFrame(
            [row for row in customers if row[0] not in ("c4", "c5")]
            + [_customer(key, name) for key, name in new_customers], SILVER_CUSTOMERS),
        "silver.fact_orders": spark.createDataFrame([*orders, new_order], SILVER_ORDERS),
        "silver.fact_events": spark.createDataFrame(
            [row for row in events if row[0] != "e4"] + [e4_moved, *new_events], SILVER_EVENTS),
        "silver.fx_rates": rates,
    }
    changes = {
        "silver.dim_customer": spark.createDataFrame(
            _changed([_customer(key, name) for key, name in new_customers], "insert")
            + _changed([customers[2], customers[3]], "delete"),
            f"{SILVER_CUSTOMERS}, _change_type STRING"),
        "silver.fact_orders": spark.createDataFrame(
            _changed([new_order], "insert"), f"{SILVER_ORDERS}, _change_type STRING"),
        "silver.fact_events": spark.createDataFrame(
            _changed(new_events, "insert") + _changed([events[3]], "update_preimage")
            + _changed([e4_moved], "update_postimage"), f"{SILVER_EVENTS}, _change_type STRING"),
        "silver.fx_rates": spark.createDataFrame([], f"{SILVER_FX}, _change_type STRING"),
    }
    before = build_customer_360(
        spark.createDataFrame(customers, SILVER_CUSTOMERS),
        spark.createDataFrame(orders, SILVER_ORDERS),
        spark.createDataFrame(events, SILVER_EVENTS), rates, salt=SALT)

    piece = affected_customers(changes, silver, salt=SALT)
    keys = piece.keys(piece.scope)
    assert piece.rows is not None
    rows = piece.rows(piece.scope, semi_join(before, keys))
    kept = before.join(keys, "customer_id", "left_anti")

    assertDataFrameEqual(kept.unionByName(rows), build_customer_360(
        *(silver[name] for name in ("silver.dim_customer", "silver.fact_orders",
                                    "silver.fact_events", "silver.fx_rates")), salt=SALT),
        checkRowOrder=False)
    assert {row["customer_id"]: row[RECOUNT] for row in piece.scope.collect()} == {
        "c1": False, "c2": True, "c3": False, "c4": False, "c5": False, "c6": False}
