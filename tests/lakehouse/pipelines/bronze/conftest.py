"""Helpers of the bronze tests: raw lines in memory, raw loads on disk, the bronze schemas."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from medallion.lakehouse.raw.landing import MANIFEST_NAME, LandedFile, LoadManifest, load_dir
from medallion.lakehouse.spark import local_frame

METADATA_DDL = (
    "_rescued_data MAP<STRING,STRING>, _source_file STRING, _ingest_ts TIMESTAMP, "
    "_run_id STRING, _proc_date DATE"
)
LANDED_AT = datetime(2026, 11, 26, 17, 19, 53, 507482, tzinfo=UTC)
RUN_ID = "run-0042"


def lines_of(spark: SparkSession, source_file: str, *lines: str) -> DataFrame:
    """Raw lines as the bronze reader hands them over: ``value``, ``_source_file``."""
    return local_frame(
        spark,
        [(line, source_file) for line in lines], "value STRING, _source_file STRING"
    )


def json_line(record: dict[str, Any]) -> str:
    """A record as the raw zone lands it: compact JSON on one line."""
    return json.dumps(record, separators=(",", ":"))


def land_lines(
    raw_root: Path,
    source: str,
    entity: str | None,
    load_dt: date,
    lines: Sequence[str],
    *,
    landed_at: datetime = LANDED_AT,
    final_newline: bool = True,
) -> LoadManifest:
    """Land raw text lines (bad JSON included, which ``land_records`` cannot) with a manifest.

    ``final_newline=False`` leaves the last line unterminated, as some writers do.
    """
    data = "\n".join(lines).encode("utf-8") + (b"\n" if final_newline and lines else b"")
    sha = hashlib.sha256(data).hexdigest()
    target = load_dir(raw_root, source, entity, load_dt)
    target.mkdir(parents=True, exist_ok=True)
    landed = LandedFile(f"part-00000-{sha[:16]}.jsonl", len(lines), sha)
    (target / landed.name).write_bytes(data)
    manifest = LoadManifest(
        source=source,
        entity=entity,
        load_dt=load_dt,
        row_count=len(lines),
        sha256=sha,
        files=(landed,),
        landed_at=landed_at,
        source_positions={},
        load_dir=target,
    )
    (target / MANIFEST_NAME).write_text(json.dumps(manifest.to_json()))
    return manifest
