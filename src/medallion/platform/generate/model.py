"""What the generator returns: records per source, the dirt manifest, and views over them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

from medallion.platform.generate.config import DirtKind, GeneratorConfig

Record = dict[str, Any]

# The columns each source really has (DESIGN.md §3); anything else in a record is metadata
# (META_COLUMNS), an evolved field (behavior v2) or injected dirt (an unknown column).
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "customer_id", "name", "email", "phone", "country", "lifecycle_stage", "created_at",
    ),
    "crm_accounts": (
        "customer_id", "name", "email", "phone", "country", "lifecycle_stage",
        "last_modified_date",
    ),
    "snowflake_orders": (
        "order_id", "customer_id", "order_ts", "status", "currency", "order_amount", "updated_at",
    ),
    "kafka_order_events": ("order_id", "customer_id", "amount", "currency", "event_ts", "op"),
    "behavior_events": (
        "event_id", "session_id", "customer_id", "event_type", "event_ts", "page", "device",
    ),
    "fx_rates": ("date", "base", "currency", "rate"),
}  # fmt: skip
KEY_COLUMNS: dict[str, str] = {
    "customers": "customer_id",
    "crm_accounts": "customer_id",
    "snowflake_orders": "order_id",
    "kafka_order_events": "order_id",
    "behavior_events": "event_id",
    "fx_rates": "currency",
}
# available_on: first day the source serves the record; superseded_on: first daily Snowflake
# snapshot that no longer holds this version (None: still current); schema_version: 1 or 2.
META_COLUMNS: dict[str, tuple[str, ...]] = {
    "crm_accounts": ("available_on",),
    "snowflake_orders": ("available_on", "superseded_on"),
    "behavior_events": ("schema_version",),
}
DATASETS: tuple[str, ...] = tuple(SOURCE_COLUMNS)
DATETIME_COLUMNS = frozenset(
    {"created_at", "last_modified_date", "order_ts", "updated_at", "event_ts"}
)
DATE_COLUMNS = frozenset({"available_on", "superseded_on", "date"})


@dataclass(frozen=True, order=True)
class DirtyRecord:
    """One record injected dirty on purpose: where it is, its key, what is wrong, which day."""

    source: str
    entity: str
    key: str | None
    kind: DirtKind
    day: date


@dataclass(frozen=True)
class Summary:
    """Dirty counts per (source, kind), clean counts per source, and late CRM updates."""

    dirty: dict[tuple[str, DirtKind], int]
    clean: dict[str, int]
    late_updates: int


@dataclass(frozen=True)
class GeneratedData:
    """Every source's records, generated from ``config``, plus the manifest of injected dirt."""

    config: GeneratorConfig
    customers: list[Record]
    crm_accounts: list[Record]
    snowflake_orders: list[Record]
    kafka_order_events: list[Record]
    behavior_events: list[Record]
    fx_rates: list[Record]
    manifest: list[DirtyRecord]

    def records(self, source: str) -> list[Record]:
        """The records of one dataset, by its name in DATASETS."""
        if source not in SOURCE_COLUMNS:
            raise KeyError(f"unknown dataset {source!r}; expected one of {DATASETS}")
        records: list[Record] = getattr(self, source)
        return records

    def summary(self) -> Summary:
        """Count the dirt per (source, kind) and the clean records per source."""
        dirty = Counter((entry.source, entry.kind) for entry in self.manifest)
        dirty_per_source = Counter(entry.source for entry in self.manifest)
        clean = {
            source: len(self.records(source)) - dirty_per_source[source] for source in DATASETS
        }
        return Summary(
            dirty=dict(sorted(dirty.items())),
            clean=clean,
            late_updates=len(late_crm_updates(self)),
        )


def source_row(record: Record, source: str) -> Record:
    """The record as the source system holds it: metadata columns left out."""
    meta = META_COLUMNS.get(source, ())
    return {column: value for column, value in record.items() if column not in meta}


def orders_snapshot(data: GeneratedData, day: date) -> list[Record]:
    """The full Snowflake orders table as loaded on ``day`` (one row per version visible then)."""
    return [
        source_row(version, "snowflake_orders")
        for version in data.snowflake_orders
        if version["available_on"] <= day
        and (version["superseded_on"] is None or version["superseded_on"] > day)
    ]


def crm_accounts_on(data: GeneratedData, day: date) -> list[Record]:
    """The CRM account versions the API starts returning on ``day``."""
    return [
        source_row(version, "crm_accounts")
        for version in data.crm_accounts
        if version["available_on"] == day
    ]


def late_crm_updates(data: GeneratedData) -> list[Record]:
    """CRM versions that become visible after the first day, days after their modification."""
    start = data.config.start_date
    return [
        version
        for version in data.crm_accounts
        if version["available_on"] > start
        and version["last_modified_date"].date() < version["available_on"]
    ]
