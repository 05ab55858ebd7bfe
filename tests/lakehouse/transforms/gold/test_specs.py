"""The gold specs' fail rules pass on good gold rows and name what is wrong with bad ones."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.quality.spec import load_spec
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.gold.customer_360 import CUSTOMER_360_SCHEMA
from medallion.lakehouse.transforms.gold.orders_daily import ORDERS_DAILY_SCHEMA

DQ_DIR = Path(__file__).resolve().parents[4] / "config" / "dq" / "gold"
FAILED = "key STRING, failed ARRAY<STRING>"
HASH = "0" * 64
T1, T2 = datetime(2026, 11, 2, 8, 0), datetime(2026, 11, 2, 9, 0)


def _failed_rules(path: Path, gold: DataFrame, key: str) -> DataFrame:
    spec = load_spec(path)
    failures = [
        sf.when(~sf.coalesce(sf.expr(rule.expression), sf.lit(False)), sf.lit(rule.name))
        for rule in spec.expectations
    ]
    return gold.select(
        sf.col(key).alias("key"), sf.array_compact(sf.array(*failures)).alias("failed")
    )


def test_customer_360_rules_catch_raw_pii_and_negative_facts(spark: SparkSession) -> None:
    def row(key: str, **changes: object) -> tuple[object, ...]:
        values: dict[str, object] = {
            "customer_id": key,
            "name_masked": "A***",
            "email_masked": "a***@example.com",
        }
        values |= {"phone_masked": "***23", "country": "DE", "lifecycle_stage": "lead"}
        values |= {"order_count": 2, "first_order_ts": T1, "last_order_ts": T2}
        values |= {"lifetime_value_usd": Decimal("1.00"), "event_count": 3, "session_count": 1}
        values |= {"last_seen_ts": T2} | changes
        return tuple(values.values())

    gold = local_frame(
        spark,
        [
            row(HASH),
            row("cust_0000001"),
            row("1" * 64, name_masked="Ada Lopez", phone_masked="+49 301 5550123"),
            row("2" * 64, lifetime_value_usd=Decimal("-1.00"), first_order_ts=datetime(2027, 1, 1)),
            row("3" * 64, session_count=4),
        ],
        CUSTOMER_360_SCHEMA,
    )

    failed = _failed_rules(DQ_DIR / "fact_customer_360.yml", gold, "customer_id")

    expected = local_frame(
        spark,
        [
            (HASH, []),
            ("cust_0000001", ["customer_id_is_hashed"]),
            ("1" * 64, ["name_is_masked", "phone_is_masked"]),
            ("2" * 64, ["lifetime_value_not_negative", "first_order_not_after_last"]),
            ("3" * 64, ["session_count_within_event_count"]),
        ],
        FAILED,
    )
    assertDataFrameEqual(failed, expected, checkRowOrder=False)


def test_orders_daily_rules_catch_null_keys_and_negative_revenue(spark: SparkSession) -> None:
    day = date(2026, 11, 2)
    gold = local_frame(
        spark,
        [
            (day, "EUR", 3, Decimal("9.45"), Decimal("10.50")),
            (None, "USD", 1, Decimal("1.00"), Decimal("1.00")),
            (day, "GBP", 1, Decimal("-1.00"), Decimal("-1.27")),
            (day, "JPY", 1, Decimal("100.00"), Decimal("0.00")),
        ],
        ORDERS_DAILY_SCHEMA,
    )

    failed = _failed_rules(DQ_DIR / "orders_daily.yml", gold, "currency")

    expected = local_frame(
        spark,
        [
            ("EUR", []),
            ("USD", ["order_date_not_null"]),
            ("GBP", ["revenue_not_negative", "revenue_usd_not_negative"]),
            ("JPY", ["revenue_usd_converted"]),
        ],
        FAILED,
    )
    assertDataFrameEqual(failed, expected, checkRowOrder=False)
