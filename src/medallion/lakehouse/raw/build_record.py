"""Which raw loads the last complete build of each business date was built from.

``build_analytics`` builds ``run_date`` from one complete load per source. Its file check notes
the loads it finds (``BuildInputs``: each load's manifest sha256, landed_at and row count), and
its last task, which runs only when every task before it succeeded or was left out, saves them
as ``<storage_root>/_system/state/builds/<run_date>.json``, replaced atomically. A failed or
partial build saves nothing, so the next run builds that date again.

The ingest job compares the loads it has for a date with that record: a load whose manifest
differs, or any load of a date never built, is new, and without a new load the build is skipped.
The loads are noted when the build starts, not when it ends, so a load landed again while a
build runs is seen as new by the next check (one build too many, never one too few).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.files import write_json_atomic
from medallion.lakehouse.raw.landing import (
    LoadManifest,
    list_loads,
    load_dir,
    peek_manifest,
    raw_zone,
    read_json_state,
)
from medallion.lakehouse.storage import StorageRoot


@dataclass(frozen=True)
class LoadKey:
    """What a build read of one load: its manifest's sha256, landed_at and row count.

    Content landed again differs in sha256. A load landed again with the same bytes (a full
    reload after a reset) differs in ``landed_at``, which bronze stamps on every row as
    ``_ingest_ts``, so it changes what the build produces too.
    """

    sha256: str
    landed_at: str
    row_count: int

    @classmethod
    def of(cls, manifest: LoadManifest) -> LoadKey:
        """The key of a load, from its manifest."""
        return cls(
            sha256=manifest.sha256,
            landed_at=manifest.landed_at.isoformat(timespec="microseconds"),
            row_count=manifest.row_count,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"sha256": self.sha256, "landed_at": self.landed_at, "row_count": self.row_count}


@dataclass(frozen=True)
class BuildInputs:
    """The complete raw loads a build of ``run_date`` reads, by source (``name[/entity]``)."""

    run_date: date
    loads: Mapping[str, LoadKey] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: a task value, and the body of a build record."""
        return {
            "run_date": self.run_date.isoformat(),
            "loads": {source: key.as_dict() for source, key in sorted(self.loads.items())},
        }

    @classmethod
    def from_json(cls, content: Any, where: str) -> BuildInputs:
        """Parse ``as_dict``'s form; ``ConfigError`` naming ``where`` when it is not that."""
        try:
            loads = {
                str(source): LoadKey(str(key["sha256"]), str(key["landed_at"]),
                                     int(key["row_count"]))
                for source, key in content["loads"].items()
            }
            return cls(date.fromisoformat(content["run_date"]), loads)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ConfigError(
                f"{where}: expected {{\"run_date\": \"YYYY-MM-DD\", \"loads\": {{source: "
                f"{{sha256, landed_at, row_count}}}}}}, found {content!r:.200}; {error!r}"
            ) from error


def source_name(manifest: LoadManifest) -> str:
    """A load's source as the jobs' ``sources`` parameters spell it: ``name`` or ``name/entity``."""
    return manifest.source if manifest.entity is None else f"{manifest.source}/{manifest.entity}"


def find_build_inputs(
    storage_root: StorageRoot, sources: Iterable[str], run_date: date
) -> BuildInputs:
    """The complete loads of ``run_date`` among ``sources`` (a source without one is left out).

    Reads manifests only; bronze checks every file against its manifest when it reads the load.
    """
    raw_root = raw_zone(storage_root)
    loads = {}
    for spec in sources:
        source, _, entity_text = spec.partition("/")
        entity = entity_text or None
        if run_date in list_loads(raw_root, source, entity):
            manifest = peek_manifest(load_dir(raw_root, source, entity, run_date))
            loads[source_name(manifest)] = LoadKey.of(manifest)
    return BuildInputs(run_date, loads)


def build_record_path(storage_root: StorageRoot, run_date: date) -> Path:
    """Where the record of ``run_date``'s last complete build is kept."""
    return storage_root.state / "builds" / f"{run_date.isoformat()}.json"


def write_build_record(
    storage_root: StorageRoot, inputs: BuildInputs, *, run_id: str, now: datetime | None = None
) -> Path:
    """Save, atomically, that run ``run_id`` built ``inputs.run_date`` from ``inputs.loads``."""
    path = build_record_path(storage_root, inputs.run_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    built_at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    write_json_atomic(path, {**inputs.as_dict(), "run_id": run_id, "built_at": built_at})
    return path


def read_build_record(storage_root: StorageRoot, run_date: date) -> BuildInputs | None:
    """What the last complete build of ``run_date`` was built from; None when never built."""
    path = build_record_path(storage_root, run_date)
    content = read_json_state(
        path, "a JSON build record (delete it to build that date again)"
    )
    if content is None:
        return None
    return BuildInputs.from_json(content, str(path))


def is_new(manifest: LoadManifest, built: BuildInputs | None) -> bool:
    """Whether ``manifest``'s load is not what the last complete build of its date read."""
    return built is None or built.loads.get(source_name(manifest)) != LoadKey.of(manifest)
