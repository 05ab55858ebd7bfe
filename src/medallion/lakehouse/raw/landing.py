"""The raw zone contract, the same for every source.

A load lives in ``<raw_root>/<source>[/<entity>]/load_dt=YYYY-MM-DD/``: JSON-lines data files
(records as received, one per line) and ``_manifest.json``, written last and atomically. A load is
complete exactly when its manifest exists; readers read the files the manifest lists, never a glob,
so a half-written or half-replaced load is never seen. One writer per load at a time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from medallion.lakehouse.errors import ConfigError, RawLoadError
from medallion.lakehouse.files import write_json_atomic
from medallion.lakehouse.storage import StorageRoot

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

RAW_DIRNAME = "raw"
MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1
LOAD_DIR_PREFIX = "load_dt="
DEFAULT_ROWS_PER_FILE = 500_000
CORRUPT_RECORD_COLUMN = "_corrupt_record"
# One definition of a line, for the writer, the manifest's counts and every reader: a line ends
# at "\n" or at the end of its file (a last record without a final newline is still a record).
LINE_SEPARATOR = "\n"
LINE_END = LINE_SEPARATOR.encode()
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class LandedFile:
    """One data file of a load: its name in the load directory, rows and sha256."""

    name: str
    row_count: int
    sha256: str


@dataclass(frozen=True)
class LoadManifest:
    """What a complete load holds; ``sha256`` covers every data byte, files in order."""

    source: str
    entity: str | None
    load_dt: date
    row_count: int
    sha256: str
    files: tuple[LandedFile, ...]
    landed_at: datetime
    source_positions: Mapping[str, Any]
    load_dir: Path
    anomalies: Mapping[str, int] = field(default_factory=dict)

    @property
    def data_paths(self) -> list[Path]:
        """The load's data files, in order."""
        return [self.load_dir / landed.name for landed in self.files]

    def to_json(self) -> dict[str, Any]:
        """The manifest file's content."""
        return {
            "manifest_version": MANIFEST_VERSION,
            "source": self.source,
            "entity": self.entity,
            "load_dt": self.load_dt.isoformat(),
            "row_count": self.row_count,
            "sha256": self.sha256,
            "files": [
                {"name": f.name, "row_count": f.row_count, "sha256": f.sha256} for f in self.files
            ],
            "landed_at": self.landed_at.isoformat(timespec="microseconds"),
            "source_positions": dict(self.source_positions),
            "anomalies": dict(self.anomalies),
        }

    @classmethod
    def from_json(cls, content: Mapping[str, Any], load_dir: Path) -> LoadManifest:
        """Parse a manifest file's content, raising ``RawLoadError`` on any missing/bad key."""
        try:
            return cls(
                source=str(content["source"]),
                entity=None if content["entity"] is None else str(content["entity"]),
                load_dt=date.fromisoformat(content["load_dt"]),
                row_count=int(content["row_count"]),
                sha256=str(content["sha256"]),
                files=tuple(
                    LandedFile(str(f["name"]), int(f["row_count"]), str(f["sha256"]))
                    for f in content["files"]
                ),
                landed_at=datetime.fromisoformat(content["landed_at"]),
                source_positions=dict(content["source_positions"]),
                load_dir=load_dir,
                anomalies={str(k): int(v) for k, v in content.get("anomalies", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RawLoadError(
                f"{load_dir / MANIFEST_NAME}: expected a manifest with source, entity, load_dt, "
                f"row_count, sha256, files, landed_at and source_positions; {error!r}"
            ) from error


def raw_zone(storage_root: StorageRoot) -> Path:
    """The raw zone under a storage root (``Lakehouse.raw_root`` is the same place)."""
    return storage_root.raw


def source_dir(raw_root: Path, source: str, entity: str | None) -> Path:
    """Where every load of a source (and entity) lives."""
    for label, name in (("source", source), ("entity", entity)):
        if name is not None and not _NAME.match(name):
            raise ConfigError(f"{label} {name!r}: expected lower snake_case, e.g. 'fx_rates'")
    base = Path(raw_root) / source
    return base / entity if entity else base


def load_dir(raw_root: Path, source: str, entity: str | None, load_dt: date) -> Path:
    """The directory of one load: ``<raw_root>/<source>[/<entity>]/load_dt=YYYY-MM-DD``."""
    return source_dir(raw_root, source, entity) / f"{LOAD_DIR_PREFIX}{load_dt.isoformat()}"


def land_records(
    raw_root: Path,
    source: str,
    entity: str | None,
    load_dt: date,
    records: Iterable[Mapping[str, Any]],
    *,
    source_positions: Mapping[str, Any] | None = None,
    expected_columns: Collection[str] | None = None,
    anomalies: Mapping[str, int] | None = None,
    now: datetime | None = None,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
) -> LoadManifest:
    """Land ``records`` as the load of ``load_dt``; returns its manifest.

    Records land as received, never dropped. The manifest counts what is odd about them
    (``anomalies``): the extractor's own counts (bad JSON, wrong types, null keys) plus, when
    ``expected_columns`` is given, ``unknown_column:<name>`` for each record carrying a value in
    a column outside it.

    Identical content (and source positions) already landed: a no-op returning the existing
    manifest. Otherwise the load is replaced: new files are staged under temporary names, renamed,
    the manifest is swapped in atomically, then files the new manifest does not list are removed.
    """
    if rows_per_file < 1:
        raise ConfigError(f"rows_per_file={rows_per_file}: expected at least 1")
    landed_at = _utc_now(now)
    positions = _to_json_value(dict(source_positions or {}))
    counts: Counter[str] = Counter({k: v for k, v in (anomalies or {}).items() if v})
    if expected_columns is not None:
        records = _counting_unknown_columns(records, frozenset(expected_columns), counts)
    target = load_dir(raw_root, source, entity, load_dt)
    target.mkdir(parents=True, exist_ok=True)
    staged: list[Path] = []
    try:
        files, total_sha = _stage_records(target, records, rows_per_file, staged)
        row_count = sum(landed.row_count for landed in files)
        found = dict(sorted(counts.items()))
        existing = _valid_manifest_or_none(target)
        if (
            existing is not None
            and existing.sha256 == total_sha
            and existing.row_count == row_count
            and existing.source_positions == positions
            and existing.anomalies == found
        ):
            return existing
        for temporary, landed in zip(staged, files, strict=True):
            temporary.replace(target / landed.name)
        staged.clear()
        manifest = LoadManifest(
            source=source,
            entity=entity,
            load_dt=load_dt,
            row_count=row_count,
            sha256=total_sha,
            files=tuple(files),
            landed_at=landed_at,
            source_positions=positions,
            load_dir=target,
            anomalies=found,
        )
        _write_manifest(manifest)
        _remove_unlisted(target, manifest)
        return manifest
    finally:
        for temporary in staged:
            temporary.unlink(missing_ok=True)


def _counting_unknown_columns(
    records: Iterable[Mapping[str, Any]], expected: frozenset[str], counts: Counter[str]
) -> Iterator[Mapping[str, Any]]:
    """``records`` unchanged, counting values in columns outside ``expected`` as they pass."""
    for record in records:
        for column, value in record.items():
            if value is not None and column not in expected:
                counts[f"unknown_column:{column}"] += 1
        yield record


def peek_manifest(load_dir: Path) -> LoadManifest:
    """The manifest of a complete load as written, without re-reading its data files.

    For positions and counts (extractors, ``medallion state``); readers of the data use
    ``read_manifest``, which also checks every file against it.
    """
    load_dir = Path(load_dir)
    manifest_path = load_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        found = (
            sorted(path.name for path in load_dir.iterdir())
            if load_dir.is_dir()
            else "no such directory"
        )
        raise RawLoadError(
            f"no complete load at {load_dir}: expected {MANIFEST_NAME} (written when a load "
            f"completes); found {found}"
        )
    try:
        content = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RawLoadError(f"{manifest_path}: expected a JSON manifest; {error}") from error
    if not isinstance(content, dict):
        raise RawLoadError(f"{manifest_path}: expected a JSON object, found {content!r:.100}")
    return LoadManifest.from_json(content, load_dir)


def read_manifest(load_dir: Path) -> LoadManifest:
    """The manifest of a complete load, after checking every file, row count and checksum."""
    manifest = peek_manifest(load_dir)
    manifest_path = manifest.load_dir / MANIFEST_NAME
    total = hashlib.sha256()
    for landed in manifest.files:
        path = manifest.load_dir / landed.name
        if not path.is_file():
            raise RawLoadError(f"{manifest_path} lists {landed.name}, which is missing")
        rows, sha = count_and_hash(path, total)
        if (rows, sha) != (landed.row_count, landed.sha256):
            raise RawLoadError(
                f"{path}: manifest expects {landed.row_count} rows, sha256 {landed.sha256}; "
                f"found {rows} rows, sha256 {sha}"
            )
    rows = sum(landed.row_count for landed in manifest.files)
    if (rows, total.hexdigest()) != (manifest.row_count, manifest.sha256):
        raise RawLoadError(
            f"{manifest_path}: expects {manifest.row_count} rows, sha256 {manifest.sha256}; its "
            f"files hold {rows} rows, sha256 {total.hexdigest()}"
        )
    return manifest


def list_loads(raw_root: Path, source: str, entity: str | None = None) -> list[date]:
    """Load dates of the complete loads (those with a manifest) of a source, oldest first."""
    base = source_dir(raw_root, source, entity)
    if not base.is_dir():
        return []
    loads = []
    for candidate in base.iterdir():
        if not candidate.name.startswith(LOAD_DIR_PREFIX):
            continue
        try:
            load_dt = date.fromisoformat(candidate.name.removeprefix(LOAD_DIR_PREFIX))
        except ValueError:
            continue
        if (candidate / MANIFEST_NAME).is_file():
            loads.append(load_dt)
    return sorted(loads)


def read_raw_json(spark: SparkSession, manifest: LoadManifest, schema: StructType) -> DataFrame:
    """A load's records with an explicit schema, plus ``_source_file`` (each row's data file).

    Lines that are not JSON are kept, all columns null, with their text in ``_corrupt_record``
    when the schema has that column. Uses ``_metadata.file_path``, which Spark Connect supports.
    """
    from pyspark.sql import functions as sf

    reader = spark.read.schema(schema).option("mode", "PERMISSIVE")
    reader = reader.option("lineSep", LINE_SEPARATOR)
    if CORRUPT_RECORD_COLUMN in schema.fieldNames():
        reader = reader.option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
    records = reader.json([str(path) for path in manifest.data_paths])
    return records.withColumn("_source_file", sf.col("_metadata.file_path"))


def _utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ConfigError(f"now={now.isoformat()}: expected a timezone-aware datetime")
    return now.astimezone(UTC)


def _json_default(value: Any) -> Any:
    """Encode what database drivers hand back; JSON sources never get here."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise RawLoadError(f"cannot land a value of type {type(value).__name__}: {value!r:.100}")


def _encode(record: Mapping[str, Any]) -> bytes:
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return line.encode("utf-8") + LINE_END


def _to_json_value(value: Any) -> Any:
    """``value`` as it reads back from JSON (so manifests compare equal after a round trip)."""
    return json.loads(json.dumps(value, default=_json_default))


def _stage_records(
    target: Path,
    records: Iterable[Mapping[str, Any]],
    rows_per_file: int,
    staged: list[Path],
) -> tuple[list[LandedFile], str]:
    """Write records into temporary files (appended to ``staged``); returns files and checksum."""
    token = uuid.uuid4().hex
    total = hashlib.sha256()
    files: list[LandedFile] = []

    def open_next() -> IO[bytes]:
        path = target / f".part-{len(staged):05d}.{token}.tmp"
        staged.append(path)
        return path.open("wb")

    def close(handle: IO[bytes], rows: int, sha: Any) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        digest = sha.hexdigest()
        files.append(LandedFile(f"part-{len(files):05d}-{digest[:16]}.jsonl", rows, digest))

    handle, rows, sha = open_next(), 0, hashlib.sha256()
    try:
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise RawLoadError(
                    f"record {index} for {target}: expected a mapping, found "
                    f"{type(record).__name__}"
                )
            if rows == rows_per_file:
                close(handle, rows, sha)
                handle, rows, sha = open_next(), 0, hashlib.sha256()
            line = _encode(record)
            handle.write(line)
            sha.update(line)
            total.update(line)
            rows += 1
        close(handle, rows, sha)
    finally:
        handle.close()
    return files, total.hexdigest()


def _valid_manifest_or_none(target: Path) -> LoadManifest | None:
    """The existing load's manifest if it is complete and intact, else None (to be replaced)."""
    if not (target / MANIFEST_NAME).is_file():
        return None
    try:
        return read_manifest(target)
    except RawLoadError:
        return None


def _write_manifest(manifest: LoadManifest) -> None:
    """Publish the manifest atomically, then fsync its directory so the rename is durable."""
    write_json_atomic(manifest.load_dir / MANIFEST_NAME, manifest.to_json())
    _fsync_dir(manifest.load_dir)


def read_json_state(path: Path, what: str) -> Any:
    """The JSON state file at ``path``, or None when there is none; ``ConfigError`` naming
    ``what`` was expected when it does not parse."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise ConfigError(f"{path}: expected {what}; {error}") from error


def _fsync_dir(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems (FUSE mounts) cannot open a directory: best effort
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _remove_unlisted(target: Path, manifest: LoadManifest) -> None:
    """Remove what a replaced load left behind: files the new manifest does not list."""
    keep = {MANIFEST_NAME, *(landed.name for landed in manifest.files)}
    for path in target.iterdir():
        if path.is_file() and path.name not in keep:
            path.unlink(missing_ok=True)


def count_and_hash(path: Path, total: Any) -> tuple[int, str]:
    """Lines and sha256 of a data file, feeding the same bytes into ``total`` (the load's sum).

    A line is what ``LINE_END`` ends, or the end of the file: a last record without a final
    newline counts, as every reader (``LINE_SEPARATOR``) reads it.
    """
    sha = hashlib.sha256()
    rows = 0
    last = LINE_END
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
            total.update(chunk)
            rows += chunk.count(LINE_END)
            last = chunk[-1:]
    return rows + (last != LINE_END), sha.hexdigest()
