"""Day boundaries for replaying an incremental source after a reset.

Redshift and Kafka read "everything after the position up to now". After a reset, the first
replayed day would therefore land the whole backlog, and every later day of the range nothing.
A reset keeps, per source, where each load it moved aside ended (``source_positions``: the
Redshift ``to`` mark, the Kafka ``end`` offsets); an extractor landing one of those dates again
stops there, so a full reload re-lands each day's records on that day. A date the plan does
not know (never loaded before the reset) reads up to now, as any daily run does.

The plan lives at ``<storage_root>/_system/state/replay/<source>.json`` and is replaced by the
next reset of that source that moves anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.files import write_json_atomic
from medallion.lakehouse.raw.landing import read_json_state
from medallion.lakehouse.storage import StorageRoot


def replay_plan_path(storage_root: StorageRoot, source: str) -> Path:
    """Where ``source``'s replay plan is kept."""
    return storage_root.state / "replay" / f"{source}.json"


def write_replay_plan(
    storage_root: StorageRoot, source: str, reset: str, ends: Mapping[date, Any]
) -> Path:
    """Save, atomically, where each moved load of ``source`` ended (``reset``: its stamp)."""
    path = replay_plan_path(storage_root, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"reset": reset, "ends": {day.isoformat(): ends[day] for day in sorted(ends)}}
    write_json_atomic(path, content)
    return path


@dataclass(frozen=True)
class ReplayEnd:
    """Where a load ended before the reset; ``position`` None: it ended before anything."""

    position: Any


def replay_end(storage_root: StorageRoot, source: str, load_dt: date) -> ReplayEnd | None:
    """Where ``source``'s load of ``load_dt`` ended before the last reset; None when unknown."""
    path = replay_plan_path(storage_root, source)
    content = read_json_state(path, "a JSON replay plan")
    if content is None:
        return None
    ends = content.get("ends") if isinstance(content, dict) else None
    if not isinstance(ends, dict):
        raise ConfigError(f"{path}: expected an object with \"ends\" by load date")
    if load_dt.isoformat() not in ends:
        return None
    return ReplayEnd(ends[load_dt.isoformat()])
