"""The bare PySpark baseline of one ``build_analytics`` day: the same transforms, nothing else.

One script, one Spark session (attached to the same warm server as the job), for one business
day: raw → bronze → silver → gold with the package's pure transforms and the same Delta writes as
the job (the same target tables and modes: the bronze ``_proc_date`` partition replaced, silver
MERGEd on its keys with the same "only newer or changed rows" condition, gold overwritten), one
table after another. Left out is everything the framework adds: the runner and its notebooks,
manifest checksums, contract checks, the unknown-columns and quarantine tables, the expectation
engine, lookups, the DQ event log, Great Expectations breakers, conservation counts, gold's
checks, CHECK constraints and unchanged-gold detection, lineage, run records and publishing.
Without the expectations silver also keeps the rows the job quarantines: a little more data, the
same work.

Tables are addressed by path under its own storage root (no catalog registration), and each
layer's session carries a label (``bare/<day>/<layer>``) as a job tag and as the commits'
``userMetadata``, so its Spark jobs and commits can be counted like the job's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf

from medallion.lakehouse.contracts import Contract, load_contract
from medallion.lakehouse.contracts.conform import parse_json_lines
from medallion.lakehouse.pipelines.bronze import BronzeTable, bronze_tables, read_raw_lines
from medallion.lakehouse.pipelines.gold import gold_rows
from medallion.lakehouse.pipelines.silver import SilverTable, silver_tables
from medallion.lakehouse.quality.spec import TableSpec, build_order, load_specs
from medallion.lakehouse.raw.landing import load_dir, peek_manifest
from medallion.lakehouse.spark import COMMIT_METADATA_CONF
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.transforms.bronze import PARTITION_COLUMNS, PROC_DATE, to_bronze
from medallion.lakehouse.transforms.silver.dedupe import DROP_RULE_COLUMN

LAYERS = ("bronze", "silver", "gold")
LABEL_PREFIX = "bare/"
RUN_ID = "bare"
SALT = "bare-salt"


@dataclass(frozen=True)
class Specs:
    """The bronze contracts and silver specs, parsed once as a long-lived script would."""

    contracts: Mapping[str, Contract]
    silver: Sequence[SilverTable]
    gold: Sequence[TableSpec]

    @classmethod
    def load(cls) -> Specs:
        """Every contract and spec the day needs."""
        return cls(
            {name: load_contract("bronze", entry.contract_entity)
             for name, entry in bronze_tables().items()},
            silver_tables(),
            build_order(load_specs("gold").values()),
        )


def table_path(root: Path, table: str) -> str:
    """``<root>/<schema>/<name>``, the lakehouse layout."""
    schema, name = table.split(".")
    return str(root / schema / name)


def read_table(spark: SparkSession, root: Path, table: str) -> DataFrame:
    """A Delta table by path."""
    return spark.read.format("delta").load(table_path(root, table))


def table_exists(root: Path, table: str) -> bool:
    """True once the table has a Delta log."""
    return (Path(table_path(root, table)) / "_delta_log").is_dir()


# --- raw -> bronze ----------------------------------------------------------------------------


def load_bronze(
    spark: SparkSession, root: Path, entry: BronzeTable, contract: Contract, day: date
) -> None:
    """Replace the day's ``_proc_date`` partition of a bronze table with the day's raw load."""
    # The manifest only for the file list and landing time: no checksums, no count checks.
    manifest = peek_manifest(load_dir(root / "raw", entry.raw_source, entry.raw_entity, day))
    parsed = parse_json_lines(read_raw_lines(spark, manifest, StorageRoot(root)))
    bronze = to_bronze(
        parsed, contract, ingest_ts=manifest.landed_at, proc_date=day, run_id=RUN_ID
    )
    (
        bronze.write.format("delta")
        .mode("overwrite")
        .partitionBy(*PARTITION_COLUMNS)
        .option("replaceWhere", f"{PROC_DATE} = DATE'{day.isoformat()}'")
        .save(table_path(root, entry.table))
    )


# --- bronze -> silver -------------------------------------------------------------------------


def merge_sql(
    target: str,
    source: str,
    columns: Sequence[str],
    *,
    keys: Sequence[str],
    sequence_by: Sequence[str] = (),
    keep_current_when_null: Sequence[str] = (),
    compare_columns: Sequence[str] | None = None,
) -> str:
    """The job's MERGE: update a key when the source is newer, or as new and different; insert."""
    on = " AND ".join(f"t.`{key}` = s.`{key}`" for key in keys)
    compared = [c for c in (compare_columns or columns) if c not in keys]
    condition = "(" + (" OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in compared) or "FALSE") + ")"
    if sequence_by:
        newer = []
        for position, column in enumerate(sequence_by):
            equal_before = [f"t.`{c}` <=> s.`{c}`" for c in sequence_by[:position]]
            later = (f"(s.`{column}` > t.`{column}` OR "
                     f"(t.`{column}` IS NULL AND s.`{column}` IS NOT NULL))")
            newer.append("(" + " AND ".join([*equal_before, later]) + ")")
        same = " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in sequence_by)
        condition = f"(({' OR '.join(newer)}) OR (({same}) AND {condition}))"
    assignments = ", ".join(
        f"t.`{c}` = coalesce(s.`{c}`, t.`{c}`)" if c in keep_current_when_null
        else f"t.`{c}` = s.`{c}`"
        for c in columns
    )
    names = ", ".join(f"`{c}`" for c in columns)
    values = ", ".join(f"s.`{c}`" for c in columns)
    return (
        f"MERGE INTO {target} t USING {source} s ON {on} "
        f"WHEN MATCHED AND {condition} THEN UPDATE SET {assignments} "
        f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    )


def upsert(
    spark: SparkSession,
    root: Path,
    updates: DataFrame,
    table: str,
    *,
    keys: Sequence[str],
    sequence_by: Sequence[str] = (),
    keep_current_when_null: Sequence[str] = (),
    compare_columns: Sequence[str] | None = None,
) -> None:
    """MERGE ``updates`` into the table on ``keys``; the first write creates it."""
    path = table_path(root, table)
    if not table_exists(root, table):
        updates.write.format("delta").mode("overwrite").save(path)
        return
    view = f"_bare_updates_{table.replace('.', '_')}"
    updates.createOrReplaceTempView(view)
    spark.sql(merge_sql(
        f"delta.`{path}`", view, updates.columns, keys=keys, sequence_by=sequence_by,
        keep_current_when_null=keep_current_when_null, compare_columns=compare_columns,
    ))
    spark.catalog.dropTempView(view)


def update_silver(spark: SparkSession, root: Path, table: SilverTable, day: date) -> None:
    """The day's bronze rows, transformed and deduplicated as the job does, MERGEd into silver."""
    spec = table.spec
    bronze = {
        source: read_table(spark, root, source).where(sf.col(PROC_DATE) == sf.lit(day))
        for source in spec.sources
    }
    prepared = spec.apply_transformations(table.prepare(bronze))
    kept = (
        table.mark_versions(prepared)
        .where(sf.col(DROP_RULE_COLUMN).isNull())
        .select(*table.columns)
    )
    upsert(spark, root, kept, spec.dataset, keys=spec.keys, sequence_by=table.sequence_by,
           keep_current_when_null=spec.build.keep_current_when_null,
           compare_columns=spec.build.columns)


# --- silver -> gold ---------------------------------------------------------------------------


def overwrite(root: Path, frame: DataFrame, table: str) -> None:
    """Replace the whole table (schema included), as the job writes gold."""
    frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
        table_path(root, table)
    )


def build_gold(spark: SparkSession, root: Path, spec: TableSpec) -> None:
    """A gold table, rebuilt from silver by its spec's transform and overwritten."""
    silver = {name: read_table(spark, root, name) for name in spec.sources}
    overwrite(root, gold_rows(spec, silver, SALT), spec.dataset)


# --- one day ----------------------------------------------------------------------------------


def layer_steps(
    spark: SparkSession, specs: Specs, layer: str, root: Path, day: date
) -> dict[str, Callable[[], None]]:
    """The layer's tables, in build order, each with the step that builds it."""
    if layer == "bronze":
        return {entry.table: partial(load_bronze, spark, root, entry, specs.contracts[name], day)
                for name, entry in bronze_tables().items()}
    if layer == "silver":
        return {table.dataset: partial(update_silver, spark, root, table, day)
                for table in specs.silver}
    return {spec.dataset: partial(build_gold, spark, root, spec) for spec in specs.gold}


def run_layer(
    spark: SparkSession, specs: Specs, layer: str, root: Path, day: date
) -> dict[str, float]:
    """Run one layer of the day, labelled ``bare/<day>/<layer>``: wall seconds per table."""
    label = f"{LABEL_PREFIX}{day}/{layer}"
    spark.addTag(label)
    spark.conf.set(COMMIT_METADATA_CONF, label)
    seconds: dict[str, float] = {}
    try:
        for table, step in layer_steps(spark, specs, layer, root, day).items():
            started = time.perf_counter()
            step()
            seconds[table] = time.perf_counter() - started
        return seconds
    finally:
        spark.removeTag(label)
        spark.conf.unset(COMMIT_METADATA_CONF)


def run_bare_day(
    spark: SparkSession, root: Path, day: date, specs: Specs
) -> dict[str, dict[str, float]]:
    """raw → bronze → silver → gold for ``day`` under ``root``: wall seconds per layer, per
    table."""
    return {layer: run_layer(spark, specs, layer, root, day) for layer in LAYERS}
