"""Determinism, sizes and config validation of the synthetic data generator."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from medallion.lakehouse.errors import ConfigError
from medallion.platform.devstack.fx_api import CURRENCIES, synthetic_usd_rate
from medallion.platform.generate import (
    DirtKind,
    DirtRates,
    GeneratedData,
    GeneratorConfig,
    generate,
    late_crm_updates,
    orders_snapshot,
)

K = DirtKind
EXPECTED_DIRT_AT_SCALE_1 = {
    ("behavior_events", K.DUPLICATE_RECORD): 300,
    ("behavior_events", K.MALFORMED_SESSION_ID): 200,
    ("behavior_events", K.NULL_KEY): 200,
    ("behavior_events", K.ORPHAN_CUSTOMER): 300,
    ("behavior_events", K.OUT_OF_SET_VALUE): 200,
    ("behavior_events", K.UNKNOWN_COLUMN): 200,
    ("crm_accounts", K.DUPLICATE_RECORD): 15,
    ("crm_accounts", K.NULL_KEY): 10,
    ("crm_accounts", K.OUT_OF_SET_VALUE): 10,
    ("crm_accounts", K.UNKNOWN_COLUMN): 10,
    ("kafka_order_events", K.DUPLICATE_RECORD): 75,
    ("kafka_order_events", K.NEGATIVE_AMOUNT): 50,
    ("kafka_order_events", K.NULL_KEY): 50,
    ("kafka_order_events", K.ORPHAN_CUSTOMER): 75,
    ("kafka_order_events", K.OUT_OF_SET_VALUE): 50,
    ("kafka_order_events", K.UNKNOWN_COLUMN): 50,
    ("kafka_order_events", K.WRONG_TYPE): 50,
    ("snowflake_orders", K.DUPLICATE_KEY): 50,
    ("snowflake_orders", K.DUPLICATE_RECORD): 75,
    ("snowflake_orders", K.NEGATIVE_AMOUNT): 50,
    ("snowflake_orders", K.NULL_KEY): 50,
    ("snowflake_orders", K.ORPHAN_CUSTOMER): 75,
    ("snowflake_orders", K.OUT_OF_SET_VALUE): 50,
    ("snowflake_orders", K.UNKNOWN_COLUMN): 50,
    ("snowflake_orders", K.WRONG_TYPE): 50,
}


def _clean_order_ids(data: GeneratedData) -> set[str]:
    """Order ids of the clean orders (dirty ones use a reserved range from ord_100000000)."""
    return {
        row["order_id"]
        for row in data.snowflake_orders
        if row["order_id"] is not None and len(row["order_id"]) == len("ord_00000001")
    }


def test_same_config_gives_identical_data(data: GeneratedData) -> None:
    assert generate(GeneratorConfig()) == data


def test_other_seed_gives_other_data(data: GeneratedData) -> None:
    other = generate(GeneratorConfig(seed=43))

    assert other.customers != data.customers
    assert other.snowflake_orders != data.snowflake_orders
    assert other.behavior_events != data.behavior_events
    assert other.fx_rates != data.fx_rates


def test_summary_at_scale_1(data: GeneratedData) -> None:
    summary = data.summary()

    assert summary.dirty == EXPECTED_DIRT_AT_SCALE_1
    assert summary.late_updates == 20
    assert summary.clean["customers"] == 1_000
    assert summary.clean["behavior_events"] == 20_000
    assert summary.clean["fx_rates"] == 7 * 10


@pytest.mark.parametrize("scale", [0.2, 3.0])
def test_counts_scale_linearly(scale: float) -> None:
    scaled = generate(GeneratorConfig(scale=scale))
    summary = scaled.summary()

    assert summary.clean["customers"] == round(1_000 * scale)
    assert summary.clean["behavior_events"] == round(20_000 * scale)
    assert len(_clean_order_ids(scaled)) == round(5_000 * scale)
    assert summary.late_updates == round(20 * scale)
    assert summary.dirty == {key: round(n * scale) for key, n in EXPECTED_DIRT_AT_SCALE_1.items()}


def test_default_dirt_rates_are_one_to_two_percent() -> None:
    rates = [DirtRates().rate(kind) for kind in DirtKind]

    assert all(0.01 <= rate <= 0.02 for rate in rates)


def test_zero_dirt_rates_give_no_manifest() -> None:
    rates = DirtRates(**dict.fromkeys((kind.value for kind in DirtKind), 0.0))

    assert generate(GeneratorConfig(scale=0.1, dirt=rates)).manifest == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scale": 0}, "GeneratorConfig.scale: expected > 0, found 0"),
        ({"scale": -1.5}, "GeneratorConfig.scale: expected > 0, found -1.5"),
        ({"days": 0}, "GeneratorConfig.days: expected an int >= 1, found 0"),
        ({"days": 2.5}, "GeneratorConfig.days: expected an int >= 1, found 2.5"),
        ({"seed": "42"}, "GeneratorConfig.seed: expected an int, found '42'"),
        ({"start_date": "2026-11-01"}, "GeneratorConfig.start_date: expected a date"),
    ],
)
def test_invalid_config_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GeneratorConfig(**changes)  # type: ignore[arg-type]


def test_invalid_dirt_rate_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"DirtRates.null_key: expected a number in \[0, 0.2\]"):
        DirtRates(null_key=0.5)


def test_behavior_is_v1_then_v2_by_day(data: GeneratedData) -> None:
    v2_from = date(2026, 11, 5)  # days 1-4 of 7 are v1

    for event in data.behavior_events:
        is_v2 = event["event_ts"].date() >= v2_from
        assert event["schema_version"] == (2 if is_v2 else 1)
        assert ("referrer" in event) is is_v2
        assert ("app_version" in event) is is_v2
    versions = {event["schema_version"] for event in data.behavior_events}
    assert versions == {1, 2}


def test_late_crm_updates_become_visible_days_after_modification(data: GeneratedData) -> None:
    late = late_crm_updates(data)

    assert len(late) == 20
    for version in late:
        lag = version["available_on"] - version["last_modified_date"].date()
        assert timedelta(days=1) <= lag <= timedelta(days=3)
        assert version["available_on"] <= date(2026, 11, 7)


def test_single_day_window_has_no_late_updates() -> None:
    assert generate(GeneratorConfig(scale=0.1, days=1)).summary().late_updates == 0


def test_customers_hold_the_latest_crm_version(data: GeneratedData) -> None:
    clean_versions = [
        v for v in data.crm_accounts if v["customer_id"] is not None and "_debug_flag" not in v
    ]
    for customer in data.customers[:50]:
        versions = [v for v in clean_versions if v["customer_id"] == customer["customer_id"]]
        latest = max(versions, key=lambda v: v["last_modified_date"])
        for column in ("name", "email", "phone", "country"):
            assert customer[column] == latest[column]


def test_last_snapshot_holds_every_clean_order_once(data: GeneratedData) -> None:
    last_day = orders_snapshot(data, date(2026, 11, 7))
    first_day = orders_snapshot(data, date(2026, 11, 1))

    clean_ids = _clean_order_ids(data)
    assert {row["order_id"] for row in last_day} >= clean_ids
    assert len(clean_ids) == 5_000
    assert all(row["updated_at"].date() == date(2026, 11, 1) for row in first_day)
    assert all("available_on" not in row and "superseded_on" not in row for row in last_day)


def test_kafka_events_overlap_snowflake_orders(data: GeneratedData) -> None:
    kafka_ids = {e["order_id"] for e in data.kafka_order_events if e["order_id"] is not None}
    clean_kafka_ids = {i for i in kafka_ids if len(i) == len("ord_00000001")}

    assert clean_kafka_ids <= _clean_order_ids(data)
    assert 3_000 < len(clean_kafka_ids) < 4_000  # about 70 % of orders are streamed
    assert {event["op"] for event in data.kafka_order_events} == {"c", "u", "d"}


def test_fx_rates_match_the_fx_stand_in(data: GeneratedData) -> None:
    expected = [
        {
            "date": date(2026, 11, 1) + timedelta(days=n),
            "base": "USD",
            "currency": currency,
            "rate": synthetic_usd_rate(42, date(2026, 11, 1) + timedelta(days=n), currency),
        }
        for n in range(7)
        for currency in CURRENCIES
    ]

    assert data.fx_rates == expected
