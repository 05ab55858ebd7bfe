"""After loading days 1 and 2, every stand-in holds exactly what the generator says."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from medallion.lakehouse.sources import crm, fx_rates
from medallion.lakehouse.sources.snowflake import ORDER_COLUMNS, TIMESTAMP_COLUMNS, extract_orders
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import kafka, postgres, snowflake
from medallion.platform.devstack.service import read_info
from medallion.platform.generate import DirtKind, GeneratedData, orders_snapshot
from medallion.platform.generate.load import (
    NULL_KEY_SKIPPED,
    UNKNOWN_COLUMN_ADDED,
    UNKNOWN_COLUMN_DROPPED,
    behavior_events_on,
    kafka_order_events_on,
)
from medallion.platform.generate.vocab import UNKNOWN_COLUMN
from tests.platform.generate.load.conftest import CONFIG, DAY_1, DAY_2, Loaded

WIDE_SINCE = datetime(2000, 1, 1, tzinfo=UTC)
WIDE_UNTIL = datetime(2100, 1, 1, tzinfo=UTC)


def _instant(value: Any) -> datetime | None:
    """A datetime from a datetime or an ISO-8601 string (None stays None)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _amount(value: Any) -> str | None:
    """An amount as the DW stores it: text, numbers in plain decimal form."""
    if value is None or isinstance(value, str):
        return value
    return format(Decimal(str(value)), "f")


def snowflake_orders(root: StorageRoot) -> Counter[tuple[Any, ...]]:
    """ORDERS as whole rows in ORDER_COLUMNS order, with multiplicity."""
    conn = snowflake.connect(root)
    try:
        rows = extract_orders(conn)
    finally:
        conn.close()
    return Counter(
        tuple(
            _instant(row[column]) if column in TIMESTAMP_COLUMNS else row[column]
            for column in ORDER_COLUMNS
        )
        for row in rows
    )


def postgres_events(root: StorageRoot) -> Counter[tuple[Any, ...]]:
    """analytics.behavior as (event_id, event_ts, unknown column), with multiplicity."""
    with postgres.connect(root) as conn:
        rows = conn.execute(
            f"SELECT event_id, event_ts, {UNKNOWN_COLUMN} FROM analytics.behavior"
        ).fetchall()
    return Counter((event_id, event_ts, flag) for event_id, event_ts, flag in rows)


def crm_accounts(root: StorageRoot) -> dict[str, tuple[Any, ...]]:
    """Every account the CRM API serves: customer_id -> (last modified, stage, email)."""
    info = read_info(root, "crm_api")
    assert info is not None
    records = crm.fetch_accounts_modified(
        info.url, WIDE_SINCE, WIDE_UNTIL, token=os.environ.get("MEDALLION_CRM_TOKEN")
    )
    assert len(records) == len({record["customer_id"] for record in records})
    return {
        record["customer_id"]: (
            crm.parse_last_modified(record),
            record["lifecycle_stage"],
            record["email"],
        )
        for record in records
    }


def kafka_events(root: StorageRoot) -> Counter[tuple[Any, ...]]:
    """Topic orders from the start as (order_id, event_ts, op, amount), with multiplicity."""
    info = kafka.status(root)
    assert info is not None
    records = kafka.consume_all(
        info.details["bootstrap_servers"], "orders", group_id=f"check-{uuid.uuid4()}"
    )
    return Counter(
        (record["order_id"], _instant(record["event_ts"]), record["op"], record["amount"])
        for record in records
    )


def _expected_orders(data: GeneratedData, day: date) -> Counter[tuple[Any, ...]]:
    return Counter(
        tuple(
            _amount(row.get(column)) if column == "order_amount" else row.get(column)
            for column in ORDER_COLUMNS
        )
        for row in orders_snapshot(data, day)
    )


def _expected_events(data: GeneratedData, days: list[date]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (event["event_id"], event["event_ts"], "true" if UNKNOWN_COLUMN in event else None)
        for day in days
        for event in behavior_events_on(data, day)
    )


def _expected_accounts(data: GeneratedData, day: date) -> dict[str, tuple[Any, ...]]:
    """The upsert outcome: per customer_id, the last version available by ``day``."""
    latest: dict[str, tuple[Any, ...]] = {}
    for version in data.crm_accounts:
        if version["available_on"] <= day and version["customer_id"] is not None:
            latest[version["customer_id"]] = (
                version["last_modified_date"],
                version["lifecycle_stage"],
                version["email"],
            )
    return latest


def _expected_kafka(data: GeneratedData, days: list[date]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (event["order_id"], event["event_ts"], event["op"], event["amount"])
        for day in days
        for event in kafka_order_events_on(data, day)
    )


def test_snowflake_holds_the_snapshot_of_day_2(loaded: Loaded) -> None:
    """ORDERS is exactly the generator's snapshot of day 2, dirt included."""
    expected = _expected_orders(loaded.data, DAY_2)
    assert snowflake_orders(loaded.root) == expected
    assert expected != _expected_orders(loaded.data, DAY_1)


def test_postgres_holds_the_events_of_days_1_and_2(loaded: Loaded) -> None:
    """analytics.behavior holds each event of days 1-2 exactly as often as generated."""
    assert postgres_events(loaded.root) == _expected_events(loaded.data, [DAY_1, DAY_2])


def test_crm_serves_the_latest_version_available_by_day_2(loaded: Loaded) -> None:
    """One account per customer_id: the last version upserted by the end of day 2."""
    assert crm_accounts(loaded.root) == _expected_accounts(loaded.data, DAY_2)


def test_kafka_holds_the_order_events_of_days_1_and_2(loaded: Loaded) -> None:
    """Topic orders holds each order event of days 1-2 exactly as often as generated."""
    assert kafka_events(loaded.root) == _expected_kafka(loaded.data, [DAY_1, DAY_2])


def test_reloading_day_2_changes_nothing(loaded: Loaded) -> None:
    """The re-load reports what the first load did; Kafka is not produced again."""
    first = loaded.reports[1]
    again = loaded.reload
    assert again.kafka.already_loaded
    assert not first.kafka.already_loaded
    assert [(s.system, s.rows, s.skipped, s.altered) for s in again.systems] == [
        (s.system, s.rows, s.skipped, s.altered) for s in first.systems
    ]


def test_report_counts_every_generated_record_of_the_day(loaded: Loaded) -> None:
    """rows + skipped = the generator's records of the day, per system; dirt is counted."""
    data = loaded.data
    for report in loaded.reports:
        day = report.day
        crm_versions = [v for v in data.crm_accounts if v["available_on"] == day]
        assert report.snowflake.rows == len(orders_snapshot(data, day))
        assert report.postgres.rows == len(behavior_events_on(data, day))
        assert report.kafka.rows == len(kafka_order_events_on(data, day))
        assert report.crm.rows + report.crm.skipped.get(NULL_KEY_SKIPPED, 0) == len(crm_versions)
        manifest = Counter((d.source, d.kind) for d in data.manifest if d.day == day)
        assert (
            report.crm.skipped.get(NULL_KEY_SKIPPED, 0)
            == manifest[("crm_accounts", DirtKind.NULL_KEY)]
        )
        assert (
            report.postgres.altered.get(UNKNOWN_COLUMN_ADDED, 0)
            == manifest[("behavior_events", DirtKind.UNKNOWN_COLUMN)]
        )
        assert (
            report.crm.altered.get(UNKNOWN_COLUMN_DROPPED, 0)
            == manifest[("crm_accounts", DirtKind.UNKNOWN_COLUMN)]
        )
    assert sum(r.snowflake.altered.get(UNKNOWN_COLUMN_DROPPED, 0) for r in loaded.reports) > 0


def test_fx_stand_in_serves_the_generated_rates(loaded: Loaded) -> None:
    """Nothing to load: the FX stand-in computes the generator's rates from (seed, date)."""
    info = read_info(StorageRoot(loaded.root), "fx_api")
    assert info is not None
    served = [
        (record["date"], record["base"], record["currency"], record["rate"])
        for offset in range(CONFIG.days)
        for record in fx_rates.fetch_fx_rates(info.url, CONFIG.start_date + timedelta(offset))
    ]
    expected = [
        (rate["date"].isoformat(), rate["base"], rate["currency"], rate["rate"])
        for rate in loaded.data.fx_rates
    ]
    assert sorted(served) == sorted(expected)
