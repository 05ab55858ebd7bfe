"""Ad-hoc SQL against the lakehouse catalog, for ``medallion sql``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medallion import compute
from medallion.lakehouse import register_tables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def open_session(storage_root: Path) -> SparkSession:
    """A session on the lakehouse for a CLI command, its tables registered.

    The warm compute server when one is up for the storage root (sub-second), else
    ``SPARK_REMOTE``, else a local session (~9 s).
    """
    from pyspark.sql import SparkSession

    from medallion.spark import build_local_session

    server = compute.find_server(storage_root)
    if server is not None:
        spark = SparkSession.builder.remote(server.url).getOrCreate()
        register_tables(spark, storage_root)
    elif os.environ.get("SPARK_REMOTE"):
        spark = SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
    else:
        spark = build_local_session(storage_root)
    return spark


def run_sql(
    query: str, storage_root: Path, *, limit: int = 1000
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and up to ``limit`` rows of ``query``'s result."""
    spark = open_session(storage_root)
    try:
        frame = spark.sql(query)
        columns = list(frame.columns)
        rows = [tuple(row) for row in frame.limit(limit).collect()]
    finally:
        spark.stop()
    return columns, rows
