"""Dirty records, injected on purpose in known amounts, each one written to the manifest.

A dirty record is always an extra record next to the clean ones, so the clean data stays
the truth. Duplicates and null keys copy a clean record; every other kind gets a fresh key
from a range reserved per (dataset, kind), so it carries exactly one kind of dirt.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import date, timedelta

from medallion.platform.generate import vocab
from medallion.platform.generate.config import DirtKind, GeneratorConfig, stream
from medallion.platform.generate.model import KEY_COLUMNS, DirtyRecord, Record

Mutation = Callable[[Record, random.Random, int], Record]

ENTITIES: dict[str, str] = {
    "crm_accounts": "crm_account",
    "snowflake_orders": "order",
    "kafka_order_events": "order_event",
    "behavior_events": "behavior_event",
}
# First number of each dataset's reserved range of dirty keys; each kind gets a sub-range.
FRESH_KEY_BASES: dict[str, tuple[str, int, int]] = {
    "snowflake_orders": ("ord_", 100_000_000, 1_000_000),
    "kafka_order_events": ("ord_", 200_000_000, 1_000_000),
    "behavior_events": ("evt_", 1_000_000_000, 10_000_000),
}
KIND_ORDER: tuple[DirtKind, ...] = tuple(DirtKind)


def _day_of(source: str, record: Record) -> date:
    """The day a dirty record first reaches its source."""
    if source in ("crm_accounts", "snowflake_orders"):
        day: date = record["available_on"]
        return day
    moment = record["event_ts"]
    return date(moment.year, moment.month, moment.day)


def _fresh_key(source: str, kind: DirtKind, number: int) -> str:
    """A key no clean record has: reserved per (dataset, kind)."""
    prefix, base, step = FRESH_KEY_BASES[source]
    return f"{prefix}{base + KIND_ORDER.index(kind) * step + number}"


def _orphan_id(config: GeneratorConfig, rng: random.Random) -> str:
    """A customer_id above every real one: a customer the CRM does not know."""
    return f"cust_{config.n_customers + 1 + rng.randrange(1_000_000):07d}"


def inject(
    config: GeneratorConfig,
    source: str,
    clean: Sequence[Record],
    base_count: int,
    mutations: dict[DirtKind, Mutation],
    pools: dict[DirtKind, Sequence[Record]] | None = None,
) -> tuple[list[Record], list[DirtyRecord]]:
    """Add round(rate * base_count) dirty records of each kind in ``mutations`` to ``clean``."""
    dirty: list[Record] = []
    manifest: list[DirtyRecord] = []
    key_column = KEY_COLUMNS[source]
    for kind, mutate in mutations.items():
        rng = stream(config.seed, f"dirt:{source}:{kind.value}")
        pool = (pools or {}).get(kind, clean)
        picks = rng.sample(range(len(pool)), min(config.dirty_count(kind, base_count), len(pool)))
        for number, pick in enumerate(picks):
            record = mutate(dict(pool[pick]), rng, number)
            dirty.append(record)
            manifest.append(
                DirtyRecord(
                    source, ENTITIES[source], record[key_column], kind, _day_of(source, record)
                )
            )
    return dirty, manifest


def _null_key(column: str) -> Mutation:
    """Set the key column to null."""
    return lambda record, _rng, _number: record | {column: None}


def _same(record: Record, _rng: random.Random, _number: int) -> Record:
    """An exact copy."""
    return record


def _fresh(source: str, kind: DirtKind, **changes: object) -> Mutation:
    """A fresh key plus fixed changes."""
    column = KEY_COLUMNS[source]
    return lambda record, _rng, number: (
        record | {column: _fresh_key(source, kind, number)} | changes
    )


def _comma_decimal(value: float) -> str:
    """An amount as a European-formatted string: the wrong type."""
    return f"{value:.2f}".replace(".", ",")


def order_mutations(config: GeneratorConfig, source: str) -> dict[DirtKind, Mutation]:
    """How each dirt kind spoils an order record of ``source`` (Snowflake or Kafka)."""
    amount = "order_amount" if source == "snowflake_orders" else "amount"
    fresh_keep = {"superseded_on": None} if source == "snowflake_orders" else {"op": "c"}

    def fresh(kind: DirtKind, change: Callable[[Record, random.Random], Record]) -> Mutation:
        def mutate(record: Record, rng: random.Random, number: int) -> Record:
            record |= {"order_id": _fresh_key(source, kind, number)} | fresh_keep
            return change(record, rng)

        return mutate

    def later_version(record: Record, rng: random.Random, _number: int) -> Record:
        others = [status for status in vocab.ORDER_STATUSES if status != record["status"]]
        later = record["updated_at"] + timedelta(seconds=rng.randint(1, 300))
        return record | {"status": rng.choice(others), "updated_at": later}

    def out_of_set(record: Record, _rng: random.Random) -> Record:
        if source == "snowflake_orders" and record["order_id"].endswith(("0", "2", "4", "6", "8")):
            return record | {"status": vocab.OUT_OF_SET_STATUS}
        return record | {"currency": vocab.OUT_OF_SET_CURRENCY}

    mutations: dict[DirtKind, Mutation] = {
        DirtKind.NULL_KEY: _null_key("order_id"),
        DirtKind.DUPLICATE_RECORD: _same,
    }
    if source == "snowflake_orders":
        mutations[DirtKind.DUPLICATE_KEY] = later_version
    mutations |= {
        DirtKind.WRONG_TYPE: fresh(
            DirtKind.WRONG_TYPE, lambda r, _rng: r | {amount: _comma_decimal(r[amount])}
        ),
        DirtKind.OUT_OF_SET_VALUE: fresh(DirtKind.OUT_OF_SET_VALUE, out_of_set),
        DirtKind.ORPHAN_CUSTOMER: fresh(
            DirtKind.ORPHAN_CUSTOMER, lambda r, rng: r | {"customer_id": _orphan_id(config, rng)}
        ),
        DirtKind.UNKNOWN_COLUMN: fresh(
            DirtKind.UNKNOWN_COLUMN, lambda r, _rng: r | {vocab.UNKNOWN_COLUMN: True}
        ),
        DirtKind.NEGATIVE_AMOUNT: fresh(
            DirtKind.NEGATIVE_AMOUNT, lambda r, _rng: r | {amount: -abs(r[amount])}
        ),
    }
    return mutations


def behavior_mutations(config: GeneratorConfig) -> dict[DirtKind, Mutation]:
    """How each dirt kind spoils a behavior event."""
    source = "behavior_events"
    malformed = (
        lambda hex16: f"sess_{hex16.upper()}",
        lambda hex16: f"sess_{hex16[:15]}",
        lambda hex16: hex16,
        lambda hex16: f"sess-{hex16}",
    )

    def malformed_session(record: Record, rng: random.Random, number: int) -> Record:
        hex16 = f"{0xA << 60 | rng.getrandbits(60):016x}"  # starts with "a": .upper() differs
        session_id = malformed[number % len(malformed)](hex16)
        key = _fresh_key(source, DirtKind.MALFORMED_SESSION_ID, number)
        return record | {"event_id": key, "session_id": session_id}

    def out_of_set(record: Record, rng: random.Random, number: int) -> Record:
        key = _fresh_key(source, DirtKind.OUT_OF_SET_VALUE, number)
        if number % 2 == 0:
            return record | {"event_id": key, "event_type": vocab.OUT_OF_SET_EVENT_TYPE}
        return record | {"event_id": key, "device": vocab.OUT_OF_SET_DEVICE}

    def orphan(record: Record, rng: random.Random, number: int) -> Record:
        key = _fresh_key(source, DirtKind.ORPHAN_CUSTOMER, number)
        return record | {"event_id": key, "customer_id": _orphan_id(config, rng)}

    return {
        DirtKind.NULL_KEY: _null_key("event_id"),
        DirtKind.DUPLICATE_RECORD: _same,
        DirtKind.MALFORMED_SESSION_ID: malformed_session,
        DirtKind.OUT_OF_SET_VALUE: out_of_set,
        DirtKind.ORPHAN_CUSTOMER: orphan,
        DirtKind.UNKNOWN_COLUMN: _fresh(
            source, DirtKind.UNKNOWN_COLUMN, **{vocab.UNKNOWN_COLUMN: True}
        ),
    }


def crm_mutations() -> dict[DirtKind, Mutation]:
    """How each dirt kind spoils a CRM account version (it keeps its customer_id)."""
    return {
        DirtKind.NULL_KEY: _null_key("customer_id"),
        DirtKind.DUPLICATE_RECORD: _same,
        DirtKind.OUT_OF_SET_VALUE: lambda record, _rng, _number: (
            record | {"lifecycle_stage": vocab.OUT_OF_SET_LIFECYCLE}
        ),
        DirtKind.UNKNOWN_COLUMN: lambda record, _rng, _number: (
            record | {vocab.UNKNOWN_COLUMN: True}
        ),
    }
