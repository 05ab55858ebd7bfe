"""What to generate: seed, size, time window and how much dirt, validated when built."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from enum import StrEnum

from medallion.lakehouse.errors import ConfigError

CUSTOMERS_PER_SCALE = 1_000
ORDERS_PER_SCALE = 5_000
EVENTS_PER_SCALE = 20_000
MAX_DIRT_RATE = 0.2


class DirtKind(StrEnum):
    """Every kind of dirt the generator injects on purpose."""

    NULL_KEY = "null_key"
    DUPLICATE_RECORD = "duplicate_record"
    DUPLICATE_KEY = "duplicate_key"
    WRONG_TYPE = "wrong_type"
    OUT_OF_SET_VALUE = "out_of_set_value"
    ORPHAN_CUSTOMER = "orphan_customer"
    MALFORMED_SESSION_ID = "malformed_session_id"
    UNKNOWN_COLUMN = "unknown_column"
    NEGATIVE_AMOUNT = "negative_amount"


@dataclass(frozen=True)
class DirtRates:
    """Share of dirty records per kind, relative to the clean entity count of a dataset."""

    null_key: float = 0.01
    duplicate_record: float = 0.015
    duplicate_key: float = 0.01
    wrong_type: float = 0.01
    out_of_set_value: float = 0.01
    orphan_customer: float = 0.015
    malformed_session_id: float = 0.01
    unknown_column: float = 0.01
    negative_amount: float = 0.01

    def __post_init__(self) -> None:
        """Refuse rates outside [0, MAX_DIRT_RATE]."""
        for rate_field in fields(self):
            rate = getattr(self, rate_field.name)
            if not isinstance(rate, int | float) or not 0 <= rate <= MAX_DIRT_RATE:
                raise ConfigError(
                    f"DirtRates.{rate_field.name}: expected a number in [0, {MAX_DIRT_RATE}], "
                    f"found {rate!r}"
                )

    def rate(self, kind: DirtKind) -> float:
        """The configured rate of one dirt kind."""
        return float(getattr(self, kind.value))


@dataclass(frozen=True)
class GeneratorConfig:
    """Seed, scale (1.0 ≈ 1,000 customers), number of days from start_date, and dirt rates."""

    seed: int = 42
    scale: float = 1.0
    days: int = 7
    start_date: date = date(2026, 11, 1)
    dirt: DirtRates = field(default_factory=DirtRates)
    late_update_rate: float = 0.02

    def __post_init__(self) -> None:
        """Refuse a config that cannot describe a data set."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"GeneratorConfig.seed: expected an int, found {self.seed!r}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, int | float):
            raise ConfigError(f"GeneratorConfig.scale: expected a number, found {self.scale!r}")
        if not self.scale > 0:
            raise ConfigError(f"GeneratorConfig.scale: expected > 0, found {self.scale!r}")
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 1:
            raise ConfigError(f"GeneratorConfig.days: expected an int >= 1, found {self.days!r}")
        if not isinstance(self.start_date, date):
            raise ConfigError(
                f"GeneratorConfig.start_date: expected a date, found {self.start_date!r}"
            )
        if not isinstance(self.dirt, DirtRates):
            raise ConfigError(f"GeneratorConfig.dirt: expected DirtRates, found {self.dirt!r}")
        if not isinstance(self.late_update_rate, int | float) or not (
            0 <= self.late_update_rate <= MAX_DIRT_RATE
        ):
            raise ConfigError(
                f"GeneratorConfig.late_update_rate: expected a number in [0, {MAX_DIRT_RATE}], "
                f"found {self.late_update_rate!r}"
            )

    @property
    def n_customers(self) -> int:
        """Number of customers (the CRM truth)."""
        return max(1, round(CUSTOMERS_PER_SCALE * self.scale))

    @property
    def n_orders(self) -> int:
        """Number of clean orders over the whole window."""
        return round(ORDERS_PER_SCALE * self.scale)

    @property
    def n_events(self) -> int:
        """Number of clean behavior events over the whole window."""
        return round(EVENTS_PER_SCALE * self.scale)

    @property
    def n_late_updates(self) -> int:
        """Number of late CRM updates (none when the window is a single day)."""
        return round(self.late_update_rate * self.n_customers) if self.days >= 2 else 0

    @property
    def v2_from(self) -> date:
        """First day whose behavior events use schema v2 (the first half of the days is v1)."""
        return self.start_date + timedelta(days=(self.days + 1) // 2)

    def dirty_count(self, kind: DirtKind, base: int) -> int:
        """How many dirty records of ``kind`` a dataset of ``base`` clean entities gets."""
        return round(self.dirt.rate(kind) * base)


def stream(seed: int, name: str) -> random.Random:
    """An independent random stream per (seed, name): one entity never shifts another's data."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - test data, not secrets
