"""orders_daily: orders and revenue per UTC order date and currency."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.gold import semi_join
from medallion.lakehouse.transforms.gold.orders_daily import (
    ORDERS_DAILY_SCHEMA,
    affected_days,
    build_orders_daily,
)
from tests.support.shapes import SILVER_FX, SILVER_ORDERS

D1, D2, D3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)


def test_orders_count_all_and_revenue_sums_only_kept_orders(spark: SparkSession) -> None:
    t1, late = datetime(2026, 11, 2, 8, 0), datetime(2026, 11, 2, 23, 59, 59)
    next_day = datetime(2026, 11, 3, 0, 0)
    orders = local_frame(
        spark,
        [
            ("o1", "c1", t1, "placed", "EUR", Decimal("9.00"), t1),
            ("o2", "c1", late, "delivered", "EUR", Decimal("0.45"), late),
            ("o3", "c2", late, "cancelled", "EUR", Decimal("100.00"), late),
            ("o4", "c2", next_day, "returned", "EUR", Decimal("50.00"), next_day),
            ("o5", "c3", t1, "shipped", "USD", Decimal("1.99"), t1),
        ],
        SILVER_ORDERS,
    )
    fx_rates = local_frame(spark, [(D1, "USD", "EUR", Decimal("0.9"))], SILVER_FX)

    daily = build_orders_daily(orders, fx_rates)

    # revenue_usd adds each order's rounded USD amount: 10.00 + 0.50
    expected = local_frame(
        spark,
        [
            (D1, "EUR", 3, Decimal("9.45"), Decimal("10.50")),
            (D2, "EUR", 1, Decimal("0.00"), Decimal("0.00")),
            (D1, "USD", 1, Decimal("1.99"), Decimal("1.99")),
        ],
        ORDERS_DAILY_SCHEMA,
    )
    assertDataFrameEqual(daily, expected, checkRowOrder=False)


def _order(key: str, at: datetime, status: str, currency: str, amount: str) -> tuple[object, ...]:
    return (key, "c1", at, status, currency, Decimal(amount), at)


def _changed(rows: Sequence[tuple[object, ...]], kind: str) -> list[tuple[object, ...]]:
    return [(*row, kind) for row in rows]


def test_a_day_brought_forward_by_its_changes_equals_its_rebuild(spark: SparkSession) -> None:
    """Every kind of change: a status change (o1), an order moving to another day and currency
    (o3, which empties its old row), a delete (o5, its row's only order), an insert (o6), a
    new EUR rate on D3, which reprices D3's EUR row (o4, o7) so that row is rebuilt, and a new
    GBP rate on D3 whose day lost its only order (o8): nothing is left to rebuild it from."""
    d1, d2, d3 = (datetime(2026, 11, day, 9) for day in (2, 3, 4))
    o1, o2 = _order("o1", d1, "placed", "EUR", "9.00"), _order("o2", d1, "delivered", "EUR", "0.45")
    o3, o4 = _order("o3", d2, "placed", "GBP", "20.00"), _order("o4", d3, "placed", "EUR", "5.00")
    o5, o8 = _order("o5", d2, "shipped", "USD", "7.00"), _order("o8", d3, "placed", "GBP", "4.00")
    o1_cancelled = _order("o1", d1, "cancelled", "EUR", "9.00")
    o3_moved = _order("o3", d1, "placed", "GBP", "20.00")
    o6, o7 = _order("o6", d2, "placed", "EUR", "3.00"), _order("o7", d3, "placed", "EUR", "1.00")
    rates_before = [(D1, "USD", "EUR", Decimal("0.9")), (D1, "USD", "GBP", Decimal("0.8"))]
    new_rates = [(D3, "USD", "EUR", Decimal("0.5")), (D3, "USD", "GBP", Decimal("0.4"))]
    changes = {
        "silver.fact_orders": local_frame(
            spark,
            _changed([o1, o3], "update_preimage")
            + _changed([o1_cancelled, o3_moved], "update_postimage")
            + _changed([o5, o8], "delete") + _changed([o6, o7], "insert"),
            f"{SILVER_ORDERS}, _change_type STRING"),
        "silver.fx_rates": local_frame(spark, _changed(new_rates, "insert"),
                                                 f"{SILVER_FX}, _change_type STRING"),
    }
    before = build_orders_daily(local_frame(spark, [o1, o2, o3, o4, o5, o8], SILVER_ORDERS),
                                local_frame(spark, rates_before, SILVER_FX))
    orders = local_frame(spark, [o1_cancelled, o2, o3_moved, o4, o6, o7], SILVER_ORDERS)
    rates = local_frame(spark, [*rates_before, *new_rates], SILVER_FX)

    piece = affected_days(changes, {"silver.fact_orders": orders, "silver.fx_rates": rates})
    keys = piece.keys(piece.scope)
    assert piece.rows is not None
    rows = piece.rows(piece.scope, semi_join(before, keys))
    kept = before.join(semi_join(before, keys), ["order_date", "currency"], "left_anti")

    assertDataFrameEqual(kept.unionByName(rows), build_orders_daily(orders, rates),
                         checkRowOrder=False)
    assert sorted(tuple(row) for row in keys.collect()) == [
        (D1, "EUR"), (D1, "GBP"), (D2, "EUR"), (D2, "GBP"), (D2, "USD"), (D3, "EUR"),
        (D3, "GBP")]
