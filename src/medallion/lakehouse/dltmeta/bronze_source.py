"""How a dlt-meta bronze dataflow reads a raw folder: Auto Loader over the loads' JSON lines.

A raw load is ``<storage_root>/raw/<source>[/<entity>]/load_dt=YYYY-MM-DD/`` with JSON-lines
data files and a ``_manifest.json`` (``medallion.lakehouse.raw.landing``). Auto Loader
(``cloudFiles``) reads the data files with a schema built from the table's schema contract under the
raw field names, takes ``load_dt`` from the folder name, and keeps fields the contract does not know
in ``_rescued_data``. dlt-meta has no expression step in bronze, only ``source_metadata``'s
``select_metadata_cols`` (``name: column`` pairs it adds with ``col()``): that is where the
metadata columns our rules read come from, and where a contract's renames (``x-source-name``)
are made. A conversion (``x-source-format``) cannot be made there.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql.types import LongType

from medallion.lakehouse.contracts.conform import RESCUED_DATA, SOURCE_FILE
from medallion.lakehouse.contracts.contract import EPOCH_MILLIS, Contract, ContractColumn
from medallion.lakehouse.raw.landing import LOAD_DIR_PREFIX
from medallion.lakehouse.transforms.bronze import INGEST_TS, PROC_DATE

LOAD_DT = LOAD_DIR_PREFIX.removesuffix("=")
DATA_FILES = "*.jsonl"
"""The names ``land_records`` gives data files: the manifest and staged files stay unread."""
METADATA_COLUMNS = {
    SOURCE_FILE: "_metadata.file_path",
    # When the raw file was written, i.e. landed: Auto Loader gives no ingest clock.
    INGEST_TS: "_metadata.file_modification_time",
    PROC_DATE: LOAD_DT,
}
READER_OPTIONS = {
    "cloudFiles.format": "json",
    "cloudFiles.partitionColumns": LOAD_DT,
    "cloudFiles.rescuedDataColumn": RESCUED_DATA,
    "pathGlobFilter": DATA_FILES,
}


def converted_columns(contract: Contract) -> list[ContractColumn]:
    """The contract columns whose raw value needs a conversion (kept raw in dlt-meta's bronze)."""
    return [column for column in contract.columns if column.source_format is not None]


def schema_ddl(contract: Contract) -> str:
    """The schema Auto Loader reads a raw file with: raw field names, contract types, load_dt.

    A converted column keeps its raw type (epoch milliseconds are a BIGINT: read as a
    timestamp, a number would count seconds).
    """
    fields = [f"`{column.source_name}` {_raw_type(column)}" for column in contract.columns]
    return ", ".join([*fields, f"`{LOAD_DT}` date"])


def select_metadata_cols(contract: Contract) -> dict[str, str]:
    """The bronze columns dlt-meta adds by name: metadata columns, then the contract's renames."""
    renames = {
        column.name: column.source_name
        for column in contract.columns
        if column.source_name != column.name and column.source_format is None
    }
    return {**METADATA_COLUMNS, **renames}


def source_details(contract: Contract, raw_path: str, schema_path: str, env: str) -> dict[str, Any]:
    """dlt-meta's ``source_details`` of a ``cloudFiles`` dataflow reading ``raw_path``."""
    return {
        f"source_path_{env}": raw_path,
        "source_schema_path": schema_path,
        "source_metadata": {"select_metadata_cols": select_metadata_cols(contract)},
    }


def _raw_type(column: ContractColumn) -> str:
    """The Spark type of the raw field: the contract's, except where the raw encoding differs."""
    if column.source_format == EPOCH_MILLIS:
        return LongType().simpleString()
    return column.spark_type.simpleString()
