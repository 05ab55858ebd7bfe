"""Checks that gate a job: is there anything to process?"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from medallion.raw.landing import list_loads, raw_zone


def count_complete_loads(storage_root: str | Path, sources: list[str], run_date: date) -> int:
    """How many of ``sources`` have a complete raw load (manifest written) for ``run_date``.

    A source is ``name`` or ``name/entity``.
    """
    raw_root = raw_zone(storage_root)
    found = 0
    for spec in sources:
        source, _, entity = spec.partition("/")
        if run_date in list_loads(raw_root, source, entity or None):
            found += 1
    return found


def parse_sources(text: str) -> list[str]:
    """``"fx_rates, crm/accounts"`` -> ``["fx_rates", "crm/accounts"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]
