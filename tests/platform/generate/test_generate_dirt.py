"""Every manifest entry is really dirty in the data, and no clean record is."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from medallion.platform.generate import (
    KEY_COLUMNS,
    META_COLUMNS,
    SOURCE_COLUMNS,
    DirtKind,
    GeneratedData,
)
from medallion.platform.generate.vocab import (
    COUNTRY_CODES,
    DEVICES,
    EVENT_TYPES,
    KAFKA_OPS,
    LIFECYCLE_STAGES,
    ORDER_CURRENCIES,
    ORDER_STATUSES,
    SESSION_ID_PATTERN,
    V2_COLUMNS,
)

Check = Callable[[dict[str, Any]], bool]
SOURCES = ("crm_accounts", "snowflake_orders", "kafka_order_events", "behavior_events")
AMOUNT = {"snowflake_orders": "order_amount", "kafka_order_events": "amount"}
VALUE_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "crm_accounts": {"lifecycle_stage": LIFECYCLE_STAGES, "country": COUNTRY_CODES},
    "snowflake_orders": {"status": ORDER_STATUSES, "currency": ORDER_CURRENCIES},
    "kafka_order_events": {"currency": ORDER_CURRENCIES, "op": KAFKA_OPS},
    "behavior_events": {"event_type": EVENT_TYPES, "device": DEVICES},
}


def _checks(data: GeneratedData, source: str) -> dict[DirtKind, Check]:
    """A predicate per single-record dirt kind: True when a record has that dirt."""
    customer_ids = {customer["customer_id"] for customer in data.customers}
    known = set(SOURCE_COLUMNS[source]) | set(META_COLUMNS.get(source, ())) | set(V2_COLUMNS)
    checks: dict[DirtKind, Check] = {
        DirtKind.NULL_KEY: lambda r: r[KEY_COLUMNS[source]] is None,
        DirtKind.UNKNOWN_COLUMN: lambda r: bool(set(r) - known),
        DirtKind.OUT_OF_SET_VALUE: lambda r: any(
            r[column] not in values for column, values in VALUE_SETS[source].items()
        ),
    }
    if source != "crm_accounts":
        checks[DirtKind.ORPHAN_CUSTOMER] = lambda r: r["customer_id"] not in customer_ids
    if source in AMOUNT:
        amount = AMOUNT[source]
        checks[DirtKind.WRONG_TYPE] = lambda r: not isinstance(r[amount], float)
        checks[DirtKind.NEGATIVE_AMOUNT] = lambda r: (
            isinstance(r[amount], float) and (r[amount] < 0)
        )
    if source == "behavior_events":
        checks[DirtKind.MALFORMED_SESSION_ID] = lambda r: (
            not re.fullmatch(SESSION_ID_PATTERN, str(r["session_id"]))
        )
    return checks


def _canonical(record: dict[str, object]) -> str:
    """A record as a comparable string."""
    return json.dumps(record, sort_keys=True, default=str)


@pytest.mark.parametrize("source", SOURCES)
def test_records_with_each_dirt_kind_match_the_manifest(data: GeneratedData, source: str) -> None:
    records = data.records(source)
    expected = Counter(entry.kind for entry in data.manifest if entry.source == source)

    for kind, check in _checks(data, source).items():
        assert sum(1 for record in records if check(record)) == expected[kind], kind


@pytest.mark.parametrize("source", SOURCES)
def test_exact_duplicates_match_the_manifest(data: GeneratedData, source: str) -> None:
    records = data.records(source)
    expected = sum(
        1 for e in data.manifest if e.source == source and e.kind is DirtKind.DUPLICATE_RECORD
    )

    assert len(records) - len({_canonical(record) for record in records}) == expected


def test_later_versions_of_a_snowflake_key_match_the_manifest(data: GeneratedData) -> None:
    distinct = {_canonical(row) for row in data.snowflake_orders if row["order_id"] is not None}
    per_visible_key = Counter(
        (row["order_id"], row["available_on"]) for row in map(json.loads, distinct)
    )
    extra_versions = sum(count - 1 for count in per_visible_key.values())
    expected = sum(1 for e in data.manifest if e.kind is DirtKind.DUPLICATE_KEY)

    assert extra_versions == expected == 50


@pytest.mark.parametrize("source", SOURCES)
def test_each_keyed_manifest_entry_points_at_a_dirty_record(
    data: GeneratedData, source: str
) -> None:
    key_column = KEY_COLUMNS[source]
    by_key: dict[object, list[dict[str, object]]] = {}
    for record in data.records(source):
        by_key.setdefault(record[key_column], []).append(record)
    checks = _checks(data, source)

    for entry in data.manifest:
        if entry.source != source or entry.kind not in checks:
            continue
        if entry.kind is DirtKind.NULL_KEY:
            assert entry.key is None
            continue
        assert any(checks[entry.kind](record) for record in by_key[entry.key]), entry


def test_manifest_days_are_within_the_window(data: GeneratedData) -> None:
    days = {entry.day for entry in data.manifest}

    assert min(days).isoformat() == "2026-11-01"
    assert max(days).isoformat() == "2026-11-07"


def test_malformed_session_ids_are_of_four_shapes(data: GeneratedData) -> None:
    malformed = [
        e["session_id"]
        for e in data.behavior_events
        if not re.fullmatch(SESSION_ID_PATTERN, e["session_id"])
    ]
    shapes = Counter(
        "upper" if s.startswith("sess_") and len(s) == 21
        else "short" if s.startswith("sess_")
        else "dash" if s.startswith("sess-")
        else "bare"
        for s in malformed
    )  # fmt: skip

    assert shapes == {"upper": 50, "short": 50, "dash": 50, "bare": 50}


def test_wrong_type_amounts_are_comma_decimals(data: GeneratedData) -> None:
    wrong = [r["order_amount"] for r in data.snowflake_orders if isinstance(r["order_amount"], str)]

    assert len(wrong) == 50
    assert all(re.fullmatch(r"\d+,\d\d", amount) for amount in wrong)
