"""What a pipeline step reads and writes, in OpenLineage's terms: the vocabulary of declarations.

Each step declares its lineage beside itself (``@lineage_job(declaration)``): a function of the
step's arguments that returns a ``StepLineage``, the job name, the input and output datasets and
where their row counts are in the step's result. The tables come from what the pipeline already
says: the table specs' ``sources`` and ``lookups`` (config/dq), the raw layout.

Namespaces: a lakehouse table is ``<schema>.<table>`` in ``medallion://<storage root>``; a raw
load directory is its absolute path in ``file`` (OpenLineage's local-file convention); a source
system or warehouse is ``<system>://<host[:port]>`` from its URL (``<system>://devstack`` for the
local stand-in), never with credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from medallion.lakehouse.raw.landing import load_dir, raw_zone
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse

FILE_NAMESPACE = "file"


@dataclass(frozen=True)
class DatasetRef:
    """One dataset of a step: OpenLineage namespace and name; ``table`` for lakehouse tables."""

    namespace: str
    name: str
    table: str | None = None


def no_rows(result: Any) -> Mapping[str, int]:
    """A step that writes no table: no rows to report, whatever it returns."""
    return {}


@dataclass(frozen=True)
class StepLineage:
    """What one call of a step reads and writes, and how to find its outputs' row counts."""

    job_name: str
    storage_root: StorageRoot
    inputs: tuple[DatasetRef, ...]
    outputs: tuple[DatasetRef, ...]
    lakehouse: Lakehouse | None = None
    # Output dataset name -> rows the step wrote there, from the step's return value.
    rows_written: Callable[[Any], Mapping[str, int]] = no_rows


def lakehouse_namespace(storage_root: StorageRoot) -> str:
    """``medallion:///abs/path/to/root`` for the tables under ``storage_root``."""
    return "medallion://" + storage_root.path.as_posix()


def table_ref(storage_root: StorageRoot, table: str) -> DatasetRef:
    """A lakehouse table as a dataset."""
    return DatasetRef(lakehouse_namespace(storage_root), table, table)


def raw_load_ref(
    storage_root: StorageRoot, source: str, entity: str | None, day: date
) -> DatasetRef:
    """A raw load directory (``raw/<source>[/<entity>]/load_dt=…``) as a file dataset."""
    path = load_dir(raw_zone(storage_root), source, entity, day).resolve()
    return DatasetRef(FILE_NAMESPACE, path.as_posix())


def system_ref(system: str, url: str, name: str) -> DatasetRef:
    """A source system's or warehouse's dataset; the URL's scheme, host and port only."""
    if not url:
        return DatasetRef(f"{system}://devstack", name)
    parts = urlsplit(url if "://" in url else f"//{url.split(',')[0]}")
    host = parts.hostname or "unknown"
    return DatasetRef(f"{system}://{host}{f':{parts.port}' if parts.port else ''}", name)


def step_rows(result: Any) -> Mapping[str, int]:
    """A ``StepResult``: its target's rows written (and its quarantine table's, named so)."""
    rows = {result.target: result.rows_written}
    if result.rows_quarantined:
        rows[f"{result.target}_quarantine"] = result.rows_quarantined
    return rows


def tables_lineage(
    job_name: str, lakehouse: Lakehouse, inputs: Iterable[str], outputs: Iterable[str] = ()
) -> StepLineage:
    """A step between lakehouse tables, its rows written from its ``StepResult`` (a step that
    writes no table, a DQ breaker say, returns something else and has no rows to report)."""
    root = lakehouse.storage_root
    written = tuple(table_ref(root, table) for table in dict.fromkeys(outputs))
    return StepLineage(
        job_name=job_name,
        storage_root=root,
        inputs=tuple(table_ref(root, table) for table in dict.fromkeys(inputs)),
        outputs=written,
        lakehouse=lakehouse,
        rows_written=step_rows if written else no_rows,
    )
