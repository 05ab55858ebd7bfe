"""Write generated data as JSON lines plus manifest.json, and read it back unchanged."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

from medallion.lakehouse.errors import ConfigError
from medallion.platform.generate.config import DirtKind, DirtRates, GeneratorConfig
from medallion.platform.generate.model import (
    DATASETS,
    DATE_COLUMNS,
    DATETIME_COLUMNS,
    DirtyRecord,
    GeneratedData,
    Record,
)

MANIFEST_FILE = "manifest.json"


def _encode(value: object) -> str:
    """JSON for the values json cannot write itself: dates and timestamps as ISO-8601."""
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON")


def _dumps(value: object) -> str:
    """Deterministic JSON: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_encode)


def _decode(record: Record) -> Record:
    """Turn the ISO strings of known date and timestamp columns back into values."""
    decoded: Record = {}
    for column, value in record.items():
        if isinstance(value, str) and column in DATETIME_COLUMNS:
            decoded[column] = datetime.fromisoformat(value)
        elif isinstance(value, str) and column in DATE_COLUMNS:
            decoded[column] = date.fromisoformat(value)
        else:
            decoded[column] = value
    return decoded


def write_generated(data: GeneratedData, directory: Path) -> Path:
    """Write ``<dataset>.jsonl`` per source and ``manifest.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for dataset in DATASETS:
        lines = "".join(_dumps(record) + "\n" for record in data.records(dataset))
        (directory / f"{dataset}.jsonl").write_text(lines, encoding="utf-8")
    manifest = {
        "config": asdict(data.config),
        "manifest": [asdict(entry) for entry in data.manifest],
    }
    (directory / MANIFEST_FILE).write_text(
        json.dumps(manifest, sort_keys=True, indent=1, default=_encode) + "\n", encoding="utf-8"
    )
    return directory


def _read_config(raw: dict[str, Any]) -> GeneratorConfig:
    """The GeneratorConfig stored in manifest.json."""
    return GeneratorConfig(
        seed=raw["seed"],
        scale=raw["scale"],
        days=raw["days"],
        start_date=date.fromisoformat(raw["start_date"]),
        dirt=DirtRates(**raw["dirt"]),
        late_update_rate=raw["late_update_rate"],
    )


def read_generated(directory: Path) -> GeneratedData:
    """Read back what write_generated wrote: equal to the data written."""
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ConfigError(f"{manifest_path}: expected a generated-data manifest, found none")
    stored = json.loads(manifest_path.read_text(encoding="utf-8"))
    datasets: dict[str, list[Record]] = {}
    for dataset in DATASETS:
        with (directory / f"{dataset}.jsonl").open(encoding="utf-8") as lines:
            datasets[dataset] = [_decode(json.loads(line)) for line in lines]
    manifest = [
        DirtyRecord(
            source=entry["source"],
            entity=entry["entity"],
            key=entry["key"],
            kind=DirtKind(entry["kind"]),
            day=date.fromisoformat(entry["day"]),
        )
        for entry in stored["manifest"]
    ]
    return GeneratedData(config=_read_config(stored["config"]), manifest=manifest, **datasets)
