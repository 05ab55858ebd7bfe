"""Deterministic synthetic data of the five sources, with dirt injected on purpose.

``generate(GeneratorConfig(seed, scale, days, start_date))`` returns plain Python records per
source and a manifest of every dirty record; ``write_generated``/``read_generated`` store them.
"""

from __future__ import annotations

from medallion.platform.generate.config import DirtKind, DirtRates, GeneratorConfig
from medallion.platform.generate.generator import generate
from medallion.platform.generate.io import read_generated, write_generated
from medallion.platform.generate.model import (
    DATASETS,
    KEY_COLUMNS,
    META_COLUMNS,
    SOURCE_COLUMNS,
    DirtyRecord,
    GeneratedData,
    Summary,
    crm_accounts_on,
    late_crm_updates,
    orders_snapshot,
    source_row,
)

__all__ = [
    "DATASETS",
    "KEY_COLUMNS",
    "META_COLUMNS",
    "SOURCE_COLUMNS",
    "DirtKind",
    "DirtRates",
    "DirtyRecord",
    "GeneratedData",
    "GeneratorConfig",
    "Summary",
    "crm_accounts_on",
    "generate",
    "late_crm_updates",
    "orders_snapshot",
    "read_generated",
    "source_row",
    "write_generated",
]
