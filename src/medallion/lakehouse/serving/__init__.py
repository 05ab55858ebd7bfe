"""Serving gold to its readers: what every warehouse sink receives, does and reports.

A publish mirrors one version of a gold table into a warehouse table: stage the snapshot in
batches, add columns gold gained, then in ONE transaction update matched keys, insert new keys,
delete keys gold no longer has, and record the published Delta version in the warehouse's
publish log. Re-publishing a version already recorded is a no-op; a failure leaves the
warehouse table as it was (staging + transaction). Afterwards the caller compares ``Figures``
of gold and of the warehouse table (reconciliation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

PUBLISH_LOG = "_medallion_publish_log"
"""The table, in the target's schema, recording which gold version each target holds."""


@dataclass(frozen=True)
class GoldColumn:
    """A gold column by name and logical type: ``string``, ``bigint``, ``decimal(p,s)``,
    ``timestamp`` (UTC instants), ``date``, ``double`` or ``boolean``."""

    name: str
    type: str


@dataclass(frozen=True)
class GoldSnapshot:
    """One Delta version of a gold table, as it leaves the lakehouse (PII already masked).

    ``batches`` returns a fresh iterator of Arrow record batches with exactly ``columns`` (same
    names, same order) each time it is called, so a retry can read the snapshot again.
    """

    table: str  # the lakehouse name, e.g. "gold.fact_customer_360"
    version: int  # its Delta version
    keys: tuple[str, ...]  # the MERGE keys, e.g. ("customer_id",)
    columns: tuple[GoldColumn, ...]
    batches: Callable[[], Iterator[pa.RecordBatch]]

    @property
    def column_names(self) -> tuple[str, ...]:
        """The columns' names, in order."""
        return tuple(column.name for column in self.columns)


@dataclass(frozen=True)
class Figures:
    """Reconciliation figures of one table: rows, distinct keys and column sums."""

    rows: int
    distinct_keys: int
    sums: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishResult:
    """What one publish did; ``skipped`` when the target already held that version."""

    warehouse: str  # "snowflake" or "redshift"
    target: str  # e.g. "ANALYTICS.FACT_CUSTOMER_360"
    gold_table: str
    version: int
    skipped: bool
    rows_staged: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    added_columns: tuple[str, ...] = ()
    seconds: float = 0.0


class WarehouseSink(Protocol):
    """A warehouse gold is published to (Snowflake, Redshift, or PostgreSQL standing in for it)."""

    name: str

    def published_version(self, target: str, gold_table: str) -> int | None:
        """The gold version ``target`` holds, from the publish log; None before the first."""
        ...

    def publish(self, snapshot: GoldSnapshot, target: str) -> PublishResult:
        """Mirror ``snapshot`` into ``target`` (see the module docstring); no-op when held."""
        ...

    def figures(self, target: str, key: str, sum_columns: Sequence[str]) -> Figures:
        """``Figures`` of ``target``: row count, distinct ``key`` count, exact column sums."""
        ...
