"""Ingestion state of the raw sources: where each next run starts, and rewinding it for a backfill.

A source's position lives in its complete loads' manifests (``source_positions``, written with
the data); Redshift also keeps a high-water-mark file. So the state is the loads themselves, and a
reset moves loads aside into ``<storage_root>/_system/state/resets/<UTC stamp>/``: nothing is
deleted, and moving a load back restores the position it held.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from medallion.lakehouse.errors import ConfigError, RawLoadError
from medallion.lakehouse.locks import file_lock
from medallion.lakehouse.quality.spec import load_specs
from medallion.lakehouse.raw.landing import (
    LOAD_DIR_PREFIX,
    MANIFEST_NAME,
    LoadManifest,
    peek_manifest,
    raw_zone,
    source_dir,
)
from medallion.lakehouse.raw.replay import write_replay_plan
from medallion.lakehouse.sources.redshift import (
    HighWaterMark,
    read_high_water_mark,
    write_high_water_mark,
)
from medallion.lakehouse.storage import StorageRoot

REDSHIFT_MARK_NAME = "redshift_behavior_mark.json"
# The sources that read "after the position up to now", and where a load's manifest says it ended.
REPLAY_END_KEYS = {"redshift": "to", "kafka": "end"}


@dataclass(frozen=True)
class RawSource:
    """A source of the raw zone: its name, its entity (None: no entity level) and its pattern."""

    source: str
    entity: str | None
    pattern: str


def raw_sources() -> tuple[RawSource, ...]:
    """The raw zone's sources, one per bronze table of the catalog (``config/dq/bronze``): the
    raw source its ``sources`` names and its ``load_pattern``. Read from the specs, not the
    extractors, whose modules would load every source driver for ``state show``."""
    return tuple(
        RawSource(*spec.raw_source, spec.load_pattern or "")
        for spec in load_specs("bronze").values()
    )


@dataclass(frozen=True)
class SourceState:
    """A source's loads and the position its next run (of a day after the latest load) starts at.

    ``next_start`` is a JSON value (None: from the beginning, or no position at all) and
    ``next_start_from`` says where it comes from. ``incomplete`` lists load directories without
    a manifest (a run that died before publishing its load).
    """

    source: str
    entity: str | None
    pattern: str
    loads: int
    first_load: date | None
    latest_load: date | None
    latest_rows: int | None
    next_start: Any
    next_start_from: str
    incomplete: tuple[date, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, dates as ISO-8601."""
        return {
            "source": self.source,
            "entity": self.entity,
            "pattern": self.pattern,
            "loads": self.loads,
            "first_load": _iso_or_none(self.first_load),
            "latest_load": _iso_or_none(self.latest_load),
            "latest_rows": self.latest_rows,
            "next_start": self.next_start,
            "next_start_from": self.next_start_from,
            "incomplete": [load_dt.isoformat() for load_dt in self.incomplete],
        }


@dataclass(frozen=True)
class ResetResult:
    """What ``reset_state`` moved (oldest first), where to, and the state before and after.

    ``destination`` holds the moved ``load_dt=`` directories (None when nothing moved);
    ``mark_before``/``mark_after`` are the Redshift mark file's mark (None: no mark, or not
    Redshift).
    """

    source: str
    entity: str | None
    from_date: date | None
    moved: tuple[date, ...]
    destination: Path | None
    remaining: tuple[date, ...]
    before: SourceState
    after: SourceState
    mark_before: dict[str, str] | None
    mark_after: dict[str, str] | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, dates as ISO-8601 and the destination as a string."""
        return {
            "source": self.source,
            "entity": self.entity,
            "from_date": _iso_or_none(self.from_date),
            "moved": [load_dt.isoformat() for load_dt in self.moved],
            "destination": None if self.destination is None else str(self.destination),
            "remaining": [load_dt.isoformat() for load_dt in self.remaining],
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "mark_before": self.mark_before,
            "mark_after": self.mark_after,
        }


def state_dir(storage_root: StorageRoot) -> Path:
    """Where ingestion state that is not in the manifests lives."""
    return storage_root.state


def redshift_mark_path(storage_root: StorageRoot) -> Path:
    """The default place of the Redshift high-water-mark file."""
    return state_dir(storage_root) / REDSHIFT_MARK_NAME


def find_source(source: str) -> RawSource:
    """The raw source named ``source``; ``ConfigError`` naming the known ones otherwise."""
    sources = raw_sources()
    for known in sources:
        if known.source == source:
            return known
    names = ", ".join(known.source for known in sources)
    raise ConfigError(f"unknown source {source!r}: expected one of {names}")


def show_state(storage_root: StorageRoot) -> list[SourceState]:
    """The state of every raw source, in the catalog's order (reads manifests, never data)."""
    return [_source_state(storage_root, known) for known in raw_sources()]


def reset_state(
    storage_root: StorageRoot,
    source: str,
    *,
    from_date: date | None = None,
    now: datetime | None = None,
) -> ResetResult:
    """Move every load of ``source`` with load_dt >= ``from_date`` (all when None) aside.

    Complete and incomplete loads alike go to
    ``<storage_root>/_system/state/resets/<UTC stamp>/<source>[/<entity>]/``, so the next run
    starts from the latest remaining load's position (or from the beginning). For Redshift the
    mark file is first rewound to the latest remaining load's ``to`` (removed when there is
    none), then loads move newest first: a crash midway leaves a valid, smaller reset. Holds the
    source's lock (Kafka: the extractor's own lock) throughout. For Redshift and Kafka, where
    each moved load ended is kept as the source's replay plan (``medallion.lakehouse.raw.replay``),
    so the loads of those dates are extracted again up to the same ends, not all into the first.
    """
    known = find_source(source)
    stamp = _utc_stamp(now)
    with file_lock(_lock_path(storage_root, known.source)):
        before = _source_state(storage_root, known)
        directories = _load_dirs(raw_zone(storage_root), known)
        moving = [d for d in directories if from_date is None or d >= from_date]
        remaining = tuple(
            d for d in directories if d not in moving and (directories[d] / MANIFEST_NAME).is_file()
        )
        is_redshift = known.source == "redshift"
        mark_before = (
            _mark_json(read_high_water_mark(redshift_mark_path(storage_root)))
            if is_redshift else None
        )
        mark_after, destination, after = mark_before, None, before
        if moving:
            if is_redshift:
                mark_after = _rewind_mark(storage_root, directories, remaining)
            destination = _claim_reset_dir(storage_root, stamp, known)
            if known.source in REPLAY_END_KEYS:
                ends = _load_ends(directories, moving, known)
                write_replay_plan(storage_root, known.source, stamp, ends)
            for load_dt in reversed(moving):
                directories[load_dt].rename(destination / directories[load_dt].name)
            after = _source_state(storage_root, known)
    return ResetResult(
        source=known.source,
        entity=known.entity,
        from_date=from_date,
        moved=tuple(moving),
        destination=destination,
        remaining=remaining,
        before=before,
        after=after,
        mark_before=mark_before,
        mark_after=mark_after,
    )


def _source_state(storage_root: StorageRoot, known: RawSource) -> SourceState:
    directories = _load_dirs(raw_zone(storage_root), known)
    manifests = {
        load_dt: peek_manifest(directory)
        for load_dt, directory in directories.items()
        if (directory / MANIFEST_NAME).is_file()
    }
    latest = manifests[max(manifests)] if manifests else None
    next_start, origin = _next_start(storage_root, known, manifests)
    return SourceState(
        source=known.source,
        entity=known.entity,
        pattern=known.pattern,
        loads=len(manifests),
        first_load=min(manifests, default=None),
        latest_load=max(manifests, default=None),
        latest_rows=None if latest is None else latest.row_count,
        next_start=next_start,
        next_start_from=origin,
        incomplete=tuple(d for d in directories if d not in manifests),
    )


def _next_start(
    storage_root: StorageRoot, known: RawSource, manifests: Mapping[date, LoadManifest]
) -> tuple[Any, str]:
    """(position, where it comes from) of the next run, as each extractor computes it."""
    latest = manifests[max(manifests)] if manifests else None
    if known.source == "redshift":
        return _redshift_start(redshift_mark_path(storage_root), manifests)
    if known.source == "crm":
        if latest is None:
            return None, "the beginning (no load)"
        watermark = _position(latest, "watermark")
        if watermark is None:
            return None, f"the beginning (load_dt={latest.load_dt} has no watermark)"
        return watermark, f"load_dt={latest.load_dt} watermark, less the lookback"
    if known.source == "kafka":
        if latest is None:
            return None, "the earliest offsets (no load)"
        end = _position(latest, "end")
        if not isinstance(end, dict):
            raise RawLoadError(
                f"{latest.load_dir / MANIFEST_NAME}: expected source_positions.end to be "
                f"{{partition: offset}}, found {end!r:.100}"
            )
        topic = _position(latest, "topic")
        return end, f"load_dt={latest.load_dt} end offsets of topic {topic!r}"
    return None, f"no position ({known.pattern})"


def _redshift_start(
    mark_path: Path, manifests: Mapping[date, LoadManifest]
) -> tuple[dict[str, str] | None, str]:
    """The later of the mark file and every load's ``to``, as the extractor starts a new day."""
    saved = read_high_water_mark(mark_path)
    landed = [
        (mark, load_dt)
        for load_dt, manifest in manifests.items()
        if (mark := _to_mark(manifest)) is not None
    ]
    if not landed:
        if saved is None:
            return None, "the beginning (no mark file, no load with a 'to' mark)"
        return saved.to_json(), "the mark file (no load has a 'to' mark)"
    latest_to, load_dt = max(landed)
    where = f"load_dt={load_dt} 'to'"
    if saved is None:
        return latest_to.to_json(), f"{where} (no mark file)"
    if saved == latest_to:
        return saved.to_json(), f"the mark file, equal to {where}"
    if saved > latest_to:
        return saved.to_json(), f"the mark file (ahead of {where})"
    return latest_to.to_json(), f"{where} (the mark file is behind)"


def _rewind_mark(
    storage_root: StorageRoot, directories: Mapping[date, Path], remaining: tuple[date, ...]
) -> dict[str, str] | None:
    """Set the mark file to the latest remaining load's ``to``; remove it when there is none."""
    mark = _to_mark(peek_manifest(directories[remaining[-1]])) if remaining else None
    path = redshift_mark_path(storage_root)
    if mark is None:
        path.unlink(missing_ok=True)
    else:
        write_high_water_mark(path, mark)
    return _mark_json(mark)


def _load_dirs(raw_root: Path, known: RawSource) -> dict[date, Path]:
    """Every ``load_dt=`` directory of a source, complete or not, oldest first."""
    base = source_dir(raw_root, known.source, known.entity)
    if not base.is_dir():
        return {}
    found = {}
    for candidate in base.iterdir():
        if not (candidate.is_dir() and candidate.name.startswith(LOAD_DIR_PREFIX)):
            continue
        try:
            found[date.fromisoformat(candidate.name.removeprefix(LOAD_DIR_PREFIX))] = candidate
        except ValueError:
            continue
    return dict(sorted(found.items()))


def _position(manifest: LoadManifest, name: str) -> Any:
    """``source_positions[name]`` of a load; ``RawLoadError`` when the key is missing."""
    if name not in manifest.source_positions:
        raise RawLoadError(
            f"{manifest.load_dir / MANIFEST_NAME}: expected source_positions.{name}, found keys "
            f"{sorted(manifest.source_positions)}"
        )
    return manifest.source_positions[name]


def _to_mark(manifest: LoadManifest) -> HighWaterMark | None:
    content = _position(manifest, "to")
    return None if content is None else HighWaterMark.from_json(content)


def _mark_json(mark: HighWaterMark | None) -> dict[str, str] | None:
    return None if mark is None else mark.to_json()


def source_lock(storage_root: StorageRoot, source: str) -> AbstractContextManager[None]:
    """Held by a source's extractor and by its reset, so neither runs during the other."""
    return file_lock(_lock_path(storage_root, source))


def _load_ends(
    directories: Mapping[date, Path], moving: list[date], known: RawSource
) -> dict[date, Any]:
    """Where each complete load about to move ended, for replaying it day by day."""
    key = REPLAY_END_KEYS[known.source]
    return {
        load_dt: peek_manifest(directories[load_dt]).source_positions.get(key)
        for load_dt in moving
        if (directories[load_dt] / MANIFEST_NAME).is_file()
    }


def _lock_path(storage_root: StorageRoot, source: str) -> Path:
    """The lock a reset holds: for Kafka the extractor's own, so neither runs during the other."""
    name = "kafka_orders.lock" if source == "kafka" else f"state-{source}.lock"
    return storage_root.locks / name


def _utc_stamp(now: datetime | None) -> str:
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ConfigError(f"now={now.isoformat()}: expected a timezone-aware datetime")
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _claim_reset_dir(storage_root: StorageRoot, stamp: str, known: RawSource) -> Path:
    """A new ``resets/<stamp>/<source>[/<entity>]`` directory (``<stamp>-2``… when taken).

    Resets of several sources with the same ``now`` share one stamp directory.
    """
    resets = state_dir(storage_root) / "resets"
    suffix = 1
    while True:
        candidate = source_dir(resets / (stamp if suffix == 1 else f"{stamp}-{suffix}"),
                               known.source, known.entity)
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            suffix += 1
            continue
        return candidate


def _iso_or_none(value: date | None) -> str | None:
    return None if value is None else value.isoformat()
