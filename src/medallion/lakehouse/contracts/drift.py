"""The schema-drift log: which fields a load carried that its contract does not know.

One JSON file per table and processing date, ``<storage_root>/_schema_drift/dt=<date>/<table>.json``
(bare table name), replaced by a re-run of that date and removed when the re-run finds no
drift, so the log describes what the current bronze partition was built from.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as sf

from medallion.lakehouse.contracts.conform import SOURCE_FILE, UNKNOWN_COLUMNS
from medallion.lakehouse.contracts.contract import Contract
from medallion.lakehouse.storage import StorageRoot

DRIFT_DIRNAME = "_schema_drift"


def count_unknown_fields(unknown_columns: DataFrame) -> DataFrame:
    """Per unknown field: the records carrying it and the first raw file it was seen in.

    Grain and key: one row per ``field``; columns ``field``, ``record_count``,
    ``first_seen_file`` (the lowest ``_source_file``: raw files are numbered in landing order).
    """
    return (
        unknown_columns.select(
            sf.explode(sf.map_keys(sf.col(UNKNOWN_COLUMNS))).alias("field"), sf.col(SOURCE_FILE)
        )
        .groupBy("field")
        .agg(
            sf.count(sf.lit(1)).alias("record_count"),
            sf.min(SOURCE_FILE).alias("first_seen_file"),
        )
        .orderBy("field")
    )


def drift_report(
    contract: Contract,
    *,
    proc_date: date,
    load: str,
    records: int,
    fields: Sequence[Row],
) -> dict[str, Any]:
    """The drift log's content for one load, from the rows of ``count_unknown_fields``."""
    return {
        "table": contract.table,
        "contract_version": contract.version,
        "contract_file": contract.path.name,
        "proc_date": proc_date.isoformat(),
        "load": load,
        "records": records,
        "unknown_fields": [
            {
                "field": row["field"],
                "record_count": int(row["record_count"]),
                "first_seen_file": row["first_seen_file"],
            }
            for row in sorted(fields, key=lambda row: str(row["field"]))
        ],
    }


def drift_path(storage_root: StorageRoot, proc_date: date, table: str) -> Path:
    """Where the drift of ``table`` (``bronze.x`` or ``x``) on ``proc_date`` is logged."""
    name = table.split(".")[-1]
    return storage_root / DRIFT_DIRNAME / f"dt={proc_date.isoformat()}" / f"{name}.json"


def write_drift_report(path: Path, report: dict[str, Any] | None) -> None:
    """Publish the report atomically, or remove a stale one when ``report`` is None."""
    if report is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
