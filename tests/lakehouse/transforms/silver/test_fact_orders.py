"""Orders: Snowflake and Kafka in one shape, then the latest state per order (by its spec)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.silver.fact_orders import unify_orders
from tests.support.shapes import (
    DAY,
    FILE_A,
    FILE_B,
    KAFKA_BRONZE,
    LANDED,
    RUN,
    SNOWFLAKE_BRONZE,
    T0,
    T1,
    T2,
    UNIFIED_ORDERS,
    kept_latest,
)

ORDERS = "silver.fact_orders"
AMOUNT = Decimal("18.76")
META = (None, FILE_A, LANDED, RUN, DAY)
KAFKA_META = (None, FILE_B, LANDED, RUN, DAY)
KAFKA_AT = datetime(2026, 11, 2, 8, 0, 1)


def _snowflake(order_id: str, status: str, updated_at: datetime) -> tuple[object, ...]:
    return (order_id, "cust_1", T0, status, "EUR", AMOUNT, updated_at, *META)


def _kafka(order_id: str, op: str, event_ts: datetime, offset: int) -> tuple[object, ...]:
    return (
        order_id, "cust_1", AMOUNT, "EUR", event_ts, op, 0, offset, KAFKA_AT, order_id,
        *KAFKA_META,
    )  # fmt: skip


def _unified(
    order_id: str,
    order_ts: datetime | None,
    status: str | None,
    updated_at: datetime,
    op: str | None,
) -> tuple[object, ...]:
    source, rank, meta = ("kafka", 0, KAFKA_META) if op else ("snowflake", 1, META)
    return (
        order_id, "cust_1", order_ts, status, "EUR", AMOUNT, updated_at, op, source, rank, *meta,
    )  # fmt: skip


def test_unify_maps_kafka_ops_to_status_and_order_ts(spark: SparkSession) -> None:
    snowflake = local_frame(spark, [_snowflake("o1", "shipped", T1)], SNOWFLAKE_BRONZE)
    kafka = local_frame(
        spark,
        [_kafka("o1", "c", T0, 1), _kafka("o1", "u", T1, 2), _kafka("o1", "d", T2, 3)],
        KAFKA_BRONZE,
    )

    unified = unify_orders(snowflake, kafka)

    expected = local_frame(
        spark,
        [
            _unified("o1", T0, "shipped", T1, None),
            _unified("o1", T0, "placed", T0, "c"),
            _unified("o1", None, None, T1, "u"),  # an update keeps the current status
            _unified("o1", None, "cancelled", T2, "d"),
        ],
        UNIFIED_ORDERS,
    )
    assertDataFrameEqual(unified, expected, checkRowOrder=False)


def test_unify_keeps_rescued_amount_text_under_its_key(spark: SparkSession) -> None:
    rescued = {"order_amount": "18,76"}
    row = list(_kafka("o9", "c", T0, 1))
    row[2], row[10] = None, rescued
    kafka = local_frame(spark, [tuple(row)], KAFKA_BRONZE)
    snowflake = local_frame(spark, [], SNOWFLAKE_BRONZE)

    unified = unify_orders(snowflake, kafka).select("order_id", "order_amount", "_rescued_data")

    expected = local_frame(
        spark,
        [("o9", None, rescued)],
        "order_id STRING, order_amount DECIMAL(18,2), _rescued_data MAP<STRING,STRING>",
    )
    assertDataFrameEqual(unified, expected)


def test_tie_on_updated_at_goes_to_snowflake(spark: SparkSession) -> None:
    valid = local_frame(
        spark,
        [_unified("o1", T0, "placed", T0, "c"), _unified("o1", T0, "placed", T0, None)],
        UNIFIED_ORDERS,
    )

    latest = kept_latest(ORDERS, valid)

    expected = local_frame(spark, [_unified("o1", T0, "placed", T0, None)], UNIFIED_ORDERS)
    assertDataFrameEqual(latest, expected)


def test_newer_kafka_cancel_replaces_an_older_snowflake_version(spark: SparkSession) -> None:
    valid = local_frame(
        spark,
        [_unified("o1", T0, "placed", T0, None), _unified("o1", None, "cancelled", T1, "d")],
        UNIFIED_ORDERS,
    )

    latest = kept_latest(ORDERS, valid)

    # order_ts, which a cancel event lacks, comes from the order's earlier row in the batch.
    expected = local_frame(spark, [_unified("o1", T0, "cancelled", T1, "d")], UNIFIED_ORDERS)
    assertDataFrameEqual(latest, expected)


def test_kafka_update_keeps_status_and_order_ts_of_the_earlier_create(
    spark: SparkSession,
) -> None:
    valid = local_frame(
        spark,
        [_unified("o2", T0, "placed", T0, "c"), _unified("o2", None, None, T1, "u")],
        UNIFIED_ORDERS,
    )

    latest = kept_latest(ORDERS, valid)

    expected = local_frame(spark, [_unified("o2", T0, "placed", T1, "u")], UNIFIED_ORDERS)
    assertDataFrameEqual(latest, expected)


def test_kafka_update_alone_leaves_status_and_order_ts_to_the_merge(spark: SparkSession) -> None:
    valid = local_frame(spark, [_unified("o3", None, None, T1, "u")], UNIFIED_ORDERS)

    latest = kept_latest(ORDERS, valid)

    assertDataFrameEqual(latest, valid)
