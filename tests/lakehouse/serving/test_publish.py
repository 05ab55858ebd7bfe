"""publish_gold: a gold Delta version to the real PostgreSQL stand-in, reconciled.

The sink's own behaviour is tested in ``test_redshift_sink.py``; here the Spark side: the
snapshot of one Delta version, the figures of both sides, the skip of a version already held,
and a warehouse that no longer matches gold.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pyspark.sql import SparkSession

from medallion.lakehouse.errors import ConfigError, ReconciliationMismatch
from medallion.lakehouse.pipelines.publish import gold_snapshot, publish_gold
from medallion.lakehouse.serving import Figures, GoldColumn
from medallion.lakehouse.serving.redshift import RedshiftSink
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from medallion.lakehouse.transforms.gold.customer_360 import CUSTOMER_360_SCHEMA
from medallion.platform.devstack import postgres
from medallion.platform.devstack.service import ServiceInfo
from tests.lakehouse.sources.redshift import conftest as redshift_slice

pg_root = redshift_slice.pg_root
pg_service = redshift_slice.pg_service

GOLD = "gold.fact_customer_360"
TARGET = "redshift_analytics.gold_customer_360"
TS = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def customer(number: int, value: str, orders: int) -> tuple[Any, ...]:
    """One gold row in ``CUSTOMER_360_SCHEMA`` order."""
    return (
        f"hash{number:03d}", "J*** D**", "j***@example.com", "***-***-1234", "DE", "customer",
        orders, TS, TS, Decimal(value), 3, 1, TS,
    )


@pytest.fixture
def lakehouse(spark: SparkSession, tmp_path: Path) -> Lakehouse:
    """A lakehouse whose gold customer_360 has three customers (version 0)."""
    house = Lakehouse.open(spark, StorageRoot(tmp_path))
    rows = [customer(1, "10.50", 1), customer(2, "20.25", 2), customer(3, "0.00", 0)]
    house.write(local_frame(spark, rows, CUSTOMER_360_SCHEMA), GOLD)
    return house


@pytest.fixture
def sink(pg_root: Path, pg_service: ServiceInfo) -> Iterator[RedshiftSink]:
    """The Redshift sink on the stand-in, its target dropped before and after."""
    drop_target(pg_root, pg_service)
    settings = postgres.client_settings(StorageRoot(pg_root))
    assert settings is not None
    yield RedshiftSink.postgres(settings)
    drop_target(pg_root, pg_service)


def drop_target(pg_root: Path, pg_service: ServiceInfo) -> None:
    with connect(pg_root, pg_service) as conn:
        conn.execute("DROP SCHEMA IF EXISTS redshift_analytics CASCADE")


def connect(pg_root: Path, pg_service: ServiceInfo) -> psycopg.Connection[Any]:
    details = pg_service.details
    return psycopg.connect(
        host=details["host"], port=int(details["port"]), dbname=details["database"],
        user=details["user"], password=postgres.password(StorageRoot(pg_root)), autocommit=True,
    )


def test_the_snapshot_is_one_delta_version_with_the_serving_types(lakehouse: Lakehouse) -> None:
    snapshot = gold_snapshot(lakehouse, GOLD)

    assert (snapshot.table, snapshot.version, snapshot.keys) == (GOLD, 0, ("customer_id",))
    assert snapshot.columns[:2] == (
        GoldColumn("customer_id", "string"), GoldColumn("name_masked", "string"),
    )
    assert {c.name: c.type for c in snapshot.columns if c.type != "string"} == {
        "order_count": "bigint", "first_order_ts": "timestamp", "last_order_ts": "timestamp",
        "lifetime_value_usd": "decimal(18,2)", "event_count": "bigint",
        "session_count": "bigint", "last_seen_ts": "timestamp",
    }
    rows = [row for batch in snapshot.batches() for row in batch.to_pylist()]
    assert sorted((r["customer_id"], r["lifetime_value_usd"]) for r in rows) == [
        ("hash001", Decimal("10.50")), ("hash002", Decimal("20.25")), ("hash003", Decimal("0.00")),
    ]


def test_first_publish_then_a_rerun_of_the_same_version_is_skipped_and_reconciled(
    lakehouse: Lakehouse, sink: RedshiftSink
) -> None:
    first = publish_gold(lakehouse, sink, GOLD, TARGET)
    again = publish_gold(lakehouse, sink, GOLD, TARGET)

    expected = Figures(
        rows=3,
        distinct_keys=3,
        sums={
            "lifetime_value_usd": Decimal("30.75"), "order_count": Decimal(3),
            "event_count": Decimal(9),
        },
    )
    assert (first.result.skipped, first.result.inserted, first.result.version) == (False, 3, 0)
    assert first.gold == first.warehouse == expected
    assert (again.result.skipped, again.gold, again.warehouse) == (True, expected, expected)


def test_a_new_gold_version_updates_inserts_and_deletes_exactly(
    lakehouse: Lakehouse, sink: RedshiftSink, spark: SparkSession
) -> None:
    publish_gold(lakehouse, sink, GOLD, TARGET)
    rows = [customer(1, "99.99", 4), customer(2, "20.25", 2), customer(4, "5.00", 1)]
    lakehouse.write(local_frame(spark, rows, CUSTOMER_360_SCHEMA), GOLD)

    outcome = publish_gold(lakehouse, sink, GOLD, TARGET)

    result = outcome.result
    assert (result.version, result.updated, result.inserted, result.deleted) == (1, 1, 1, 1)
    assert outcome.warehouse.sums["lifetime_value_usd"] == Decimal("125.24")
    assert outcome.warehouse == outcome.gold


def test_a_warehouse_that_no_longer_matches_gold_fails_with_both_figures(
    lakehouse: Lakehouse, sink: RedshiftSink, pg_root: Path, pg_service: ServiceInfo
) -> None:
    publish_gold(lakehouse, sink, GOLD, TARGET)
    with connect(pg_root, pg_service) as conn:
        conn.execute(f"UPDATE {TARGET} SET lifetime_value_usd = 11.5 WHERE customer_id = 'hash001'")

    with pytest.raises(ReconciliationMismatch) as failure:
        publish_gold(lakehouse, sink, GOLD, TARGET)

    assert str(failure.value) == (
        f"redshift {TARGET}: expected the figures of {GOLD} version 0 (rows 3, distinct keys 3, "
        "sum(lifetime_value_usd) 30.75, sum(order_count) 3, sum(event_count) 9), found rows 3, "
        "distinct keys 3, sum(lifetime_value_usd) 31.75, sum(order_count) 3, sum(event_count) 9"
    )


def test_a_table_that_is_not_served_is_refused(lakehouse: Lakehouse) -> None:
    with pytest.raises(ConfigError, match=r"'gold.orders_daily' is not published; expected one of"):
        gold_snapshot(lakehouse, "gold.orders_daily")
