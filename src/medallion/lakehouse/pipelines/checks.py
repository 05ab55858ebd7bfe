"""Checks that gate a job: is there anything to process?"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from medallion.lakehouse.errors import RawLoadsMissing
from medallion.lakehouse.raw.build_record import BuildInputs, is_new, read_build_record
from medallion.lakehouse.raw.landing import list_loads, load_dir, raw_zone, read_manifest
from medallion.lakehouse.storage import StorageRoot


def count_complete_loads(storage_root: StorageRoot, sources: list[str], run_date: date) -> int:
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


@dataclass(frozen=True)
class LandedSummary:
    """Complete raw loads over some load dates: how many of those expected, files and rows.

    ``new_loads`` and ``rows_new`` count the loads the last complete build of their date did
    not read (``medallion.lakehouse.raw.build_record``): all of a date never built.
    """

    dates: tuple[str, ...]
    by_source: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def expected_loads(self) -> int:
        """One load per source and date."""
        return len(self.by_source) * len(self.dates)

    @property
    def complete_loads(self) -> int:
        """Loads whose manifest is written."""
        return sum(counts["loads"] for counts in self.by_source.values())

    @property
    def files(self) -> int:
        """Data files of those loads."""
        return sum(counts["files"] for counts in self.by_source.values())

    @property
    def rows(self) -> int:
        """Rows of those loads."""
        return sum(counts["rows"] for counts in self.by_source.values())

    @property
    def new_loads(self) -> int:
        """Loads that differ from what the last complete build of their date read."""
        return sum(counts["new_loads"] for counts in self.by_source.values())

    @property
    def rows_new(self) -> int:
        """Rows of those new loads."""
        return sum(counts["rows_new"] for counts in self.by_source.values())

    @property
    def missing(self) -> list[str]:
        """Sources with fewer complete loads than dates."""
        return [name for name, counts in self.by_source.items()
                if counts["loads"] < len(self.dates)]

    def require_complete(self) -> None:
        """Raise ``RawLoadsMissing`` naming each source and date without a complete load."""
        if not self.missing:
            return
        gaps = "; ".join(
            f"{name}: {self.by_source[name]['loads']} of {len(self.dates)}" for name in self.missing
        )
        raise RawLoadsMissing(
            f"expected a complete raw load per source and date for {', '.join(self.dates)}, "
            f"found {self.complete_loads} of {self.expected_loads} ({gaps}); see the failed "
            "ingest task(s) for why"
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for task values and run summaries."""
        return {
            "dates": list(self.dates),
            "expected_loads": self.expected_loads,
            "complete_loads": self.complete_loads,
            "files": self.files,
            "rows": self.rows,
            "new_loads": self.new_loads,
            "rows_new": self.rows_new,
            "missing": self.missing,
            "by_source": {name: dict(counts) for name, counts in self.by_source.items()},
        }


def landed_summary(
    storage_root: StorageRoot, sources: Iterable[str], dates: Iterable[str | date]
) -> LandedSummary:
    """Complete loads, data files and rows of each source over ``dates``, and which are new."""
    raw_root = raw_zone(storage_root)
    wanted = [d if isinstance(d, date) else date.fromisoformat(d) for d in dates]
    built: dict[date, BuildInputs | None] = {d: read_build_record(storage_root, d) for d in wanted}
    by_source: dict[str, dict[str, int]] = {}
    for spec in sources:
        source, _, entity_text = spec.partition("/")
        entity = entity_text or None
        complete = set(list_loads(raw_root, source, entity))
        counts = {"loads": 0, "files": 0, "rows": 0, "new_loads": 0, "rows_new": 0}
        for load_dt in wanted:
            if load_dt not in complete:
                continue
            manifest = read_manifest(load_dir(raw_root, source, entity, load_dt))
            counts["loads"] += 1
            counts["files"] += len(manifest.files)
            counts["rows"] += manifest.row_count
            if is_new(manifest, built[load_dt]):
                counts["new_loads"] += 1
                counts["rows_new"] += manifest.row_count
        by_source[spec] = counts
    return LandedSummary(tuple(d.isoformat() for d in wanted), by_source)
