"""Raw -> bronze for the five sources: one generic step, driven by each table's contract.

``load_bronze`` reads a complete raw load (its manifest's files), checks it against the latest
contract before writing anything, then replaces the ``_proc_date`` partition of the bronze table,
its ``_unknown_columns`` and ``_quarantine`` tables, logs unknown fields as schema drift, and
reconciles what it wrote with the manifest. The load is parsed once: its conformed lines are
kept for the check, the three writes and the drift log. Re-running a day leaves every table
identical.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.types import DecimalType, MapType, StructType

from medallion.lakehouse.contracts import Contract, load_contract
from medallion.lakehouse.contracts.conform import (
    SOURCE_FILE,
    LoadProfile,
    check_contract,
    conform_lines,
    pack_lines,
    parse_json_lines,
    profile_conformed,
    read_profile,
    unpack_lines,
)
from medallion.lakehouse.contracts.drift import (
    count_unknown_fields,
    drift_path,
    drift_report,
    write_drift_report,
)
from medallion.lakehouse.errors import (
    ConfigError,
    ContractViolation,
    ExpectationFailed,
    RawLoadError,
)
from medallion.lakehouse.lineage import lineage_job
from medallion.lakehouse.lineage.steps import StepLineage, raw_load_ref, step_rows, table_ref
from medallion.lakehouse.pipelines import StepResult
from medallion.lakehouse.quality.spec import load_specs
from medallion.lakehouse.raw.landing import LINE_SEPARATOR, LoadManifest, load_dir, read_manifest
from medallion.lakehouse.spark import computed_once, counted_while
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from medallion.lakehouse.transforms.bronze import (
    PARTITION_COLUMNS,
    PROC_DATE,
    RUN_ID,
    bronze_from_conformed,
    quarantine_from_conformed,
    unknown_columns_from_conformed,
)

LAYER = "bronze"
UNKNOWN_COLUMNS_SUFFIX = "_unknown_columns"
QUARANTINE_SUFFIX = "_quarantine"
CREATED = "created"  # in a table's WrittenPartitions: the record covers the table


@dataclass(frozen=True)
class BronzeTable:
    """A bronze table and where it comes from: a raw source (and entity) and its contract."""

    name: str
    raw_source: str
    raw_entity: str | None
    contract_entity: str

    @property
    def table(self) -> str:
        """The bronze table's full name."""
        return f"{LAYER}.{self.name}"

    @property
    def unknown_columns_table(self) -> str:
        """Where the fields the contract does not know are kept, with the row's key."""
        return f"{self.table}{UNKNOWN_COLUMNS_SUFFIX}"

    @property
    def quarantine_table(self) -> str:
        """Where the lines that are not JSON objects go."""
        return f"{self.table}{QUARANTINE_SUFFIX}"


def bronze_tables() -> dict[str, BronzeTable]:
    """The bronze tables, by name: one per spec in ``config/dq/bronze``, each fed by the raw
    source its ``sources`` names (``raw/<source>[/<entity>]``) and checked by the schema
    contract of its own name."""
    return {spec.name: BronzeTable(spec.name, *spec.raw_source, spec.name)
            for spec in load_specs(LAYER).values()}


def bronze_table(table: str) -> BronzeTable:
    """The bronze table ``table`` (``"kafka_orders"`` or ``"bronze.kafka_orders"``)."""
    name = table.removeprefix(f"{LAYER}.")
    tables = bronze_tables()
    if name not in tables:
        raise ConfigError(
            f"bronze table {table!r}: expected one of {', '.join(sorted(tables))}"
        )
    return tables[name]


def read_raw_lines(
    spark: SparkSession, manifest: LoadManifest, storage_root: StorageRoot
) -> DataFrame:
    """A load's lines as text: ``value`` and ``_source_file`` (relative to the storage root).

    Only the files the manifest lists, split on ``\\n`` exactly as the manifest counts rows.
    """
    relative_dir = _relative(manifest.load_dir, storage_root)
    paths = [str(path) for path in manifest.data_paths]
    lines = spark.read.option("lineSep", LINE_SEPARATOR).text(paths)
    # The file name is the last segment of Spark's file URI; the directory is known already,
    # which avoids decoding the URI (percent-escapes, file:/ vs file:///). Cut, not matched: a
    # regular expression per line cost about 2 s of CPU per million lines.
    file_name = sf.substring_index(sf.col("_metadata.file_path"), "/", -1)
    return lines.select(
        "value", sf.concat(sf.lit(f"{relative_dir}/"), file_name).alias(SOURCE_FILE)
    )


def load_bronze_lineage(lakehouse: Lakehouse, table: str, run_date: date, **_: object
                        ) -> StepLineage:
    """``load_bronze`` reads one raw load and writes the table, its unknown-columns and
    quarantine tables."""
    entry = bronze_table(table)
    root = lakehouse.storage_root
    return StepLineage(
        job_name=f"load_bronze.{entry.name}",
        storage_root=root,
        inputs=(raw_load_ref(root, entry.raw_source, entry.raw_entity, run_date),),
        outputs=tuple(
            table_ref(root, name)
            for name in (entry.table, entry.unknown_columns_table, entry.quarantine_table)
        ),
        lakehouse=lakehouse,
        rows_written=step_rows,
    )


@lineage_job(load_bronze_lineage)
def load_bronze(
    lakehouse: Lakehouse, table: str, run_date: date, *, run_id: str, min_rows: int = 0
) -> StepResult:
    """Replace partition ``_proc_date = run_date`` of a bronze table with that day's raw load.

    Fails before writing on a missing/incomplete load (``RawLoadError``), a contract break
    (``ContractViolation``) or fewer than ``min_rows`` records (``ExpectationFailed``); fails
    after writing when the rows written and quarantined do not add up to the manifest's count.
    The raw lines are parsed and conformed once, by the contract check's aggregation, and kept
    (memory, spilling to disk) until the step ends, written or failed.
    """
    entry = bronze_table(table)
    manifest = read_manifest(
        load_dir(lakehouse.raw_root, entry.raw_source, entry.raw_entity, run_date)
    )
    contract = load_contract(LAYER, entry.contract_entity)
    load = _relative(manifest.load_dir, lakehouse.storage_root)
    lines = read_raw_lines(lakehouse.spark, manifest, lakehouse.storage_root)
    packed = pack_lines(conform_lines(parse_json_lines(lines), contract), contract)
    with computed_once(packed) as kept:
        conformed = unpack_lines(kept)
        profile = read_profile(profile_conformed(conformed, contract).collect()[0], contract)
        check_contract(contract, profile, load)
        check_row_counts(entry.table, manifest, profile.records, profile.bad_lines)
        if profile.records < min_rows:
            raise ExpectationFailed(
                f"{entry.table} _proc_date={run_date}: expected at least {min_rows:,} rows "
                f"(min_rows), found {profile.records:,} in {load}"
            )

        bronze = bronze_from_conformed(
            conformed, contract, ingest_ts=manifest.landed_at, proc_date=run_date, run_id=run_id
        )
        unknown = unknown_columns_from_conformed(
            conformed, contract, proc_date=run_date, run_id=run_id
        )
        quarantine = quarantine_from_conformed(conformed, proc_date=run_date, run_id=run_id)
        written = write_partitions(
            lakehouse,
            run_date,
            [
                PartitionWrite(entry.table, bronze, profile.records),
                PartitionWrite(
                    entry.unknown_columns_table, unknown, profile.records_with_unknown
                ),
                PartitionWrite(entry.quarantine_table, quarantine, profile.bad_lines),
            ],
        )
        _log_drift(unknown, contract, profile, run_date, lakehouse.storage_root, entry, load)
    rows, quarantined = written[entry.table], written[entry.quarantine_table]
    check_row_counts(entry.table, manifest, rows, quarantined)
    return StepResult(
        step=f"load_bronze_{entry.name}",
        target=entry.table,
        rows_in=manifest.row_count,
        rows_written=rows,
        rows_quarantined=quarantined,
    )


def check_row_counts(table: str, manifest: LoadManifest, rows: int, quarantined: int) -> None:
    """Raise ``RawLoadError`` unless bronze rows + quarantined lines = the manifest's row count."""
    if rows + quarantined != manifest.row_count:
        raise RawLoadError(
            f"{table}: expected the {manifest.row_count:,} rows of {manifest.load_dir} "
            f"(manifest row_count), found {rows + quarantined:,} ({rows:,} bronze rows + "
            f"{quarantined:,} quarantined lines)"
        )


@dataclass(frozen=True)
class PartitionWrite:
    """The rows one table's ``_proc_date`` partition must hold after the step, and how many."""

    table: str
    frame: DataFrame
    rows: int  # known before writing (the load's profile): an empty frame is never scanned


def write_partitions(
    lakehouse: Lakehouse, run_date: date, writes: Sequence[PartitionWrite]
) -> dict[str, int]:
    """Replace partition ``_proc_date = run_date`` of each table; the rows each now holds.

    A partition that already holds exactly its new rows (``_run_id`` aside) is left as it is: a
    re-run under a new job run id then changes nothing, and ``_run_id`` keeps naming the run
    that produced the rows. A table is created on its first load even when empty, so its
    readers find it. Which partitions hold rows already is one small Spark job for all tables
    (pruned to the partition); only those are compared with their new rows, in one more job, so
    a new day's load is not parsed a second time. The rows written are counted as they are.

    Only a partition the step wrote before can hold rows, in a table the step created
    (``WrittenPartitions``): a new day's load reads none of its tables. Such a read is the first
    of a table since its last commit, and pays Delta's state reconstruction: `make bench`'s
    small day 2 (the day after the tables were created), bronze tasks took 5.0-7.4 s with it
    and 2.5-4.6 s without.
    """
    existing = [write for write in writes if lakehouse.exists(write.table)]
    for write in existing:
        _evolve_schema(lakehouse, write.table, write.frame.schema)
    written = {write.table: WrittenPartitions.of(lakehouse.storage_root, write.table)
               for write in writes}
    unread = {write.table for write in existing
              if not written[write.table].may_hold_rows(run_date)}  # the partition is empty
    occupied = _occupied(lakehouse, run_date, [w for w in existing if w.table not in unread])
    digests = _digests(lakehouse, run_date, [w for w in existing if w.table in occupied])
    existing_tables = {write.table for write in existing}
    rows: dict[str, int] = {}
    for write in writes:
        if write.table in occupied:
            current = digests.get(write.table)
            if current is not None and current == digests.get(f"{write.table}#new", (0, None)):
                rows[write.table] = current[0]
                continue
        elif write.table in existing_tables and not write.rows:
            rows[write.table] = 0  # an empty partition that stays empty
            continue
        if write.table not in existing_tables:
            written[write.table].creating()
        # Appended only when this run put the partition on record: of two runs that both found
        # it empty, the second replaces it, so no rows are written twice.
        first = written[write.table].writing(run_date)
        rows[write.table] = _write_partition(lakehouse, write, run_date,
                                             empty=first and write.table in unread)
    return rows


@dataclass(frozen=True)
class WrittenPartitions:
    """The ``_proc_date`` partitions of a bronze table that the bronze step has written.

    A file per partition, ``<state>/bronze/written/<table>/<date>``, made before the partition
    is written (so a write that fails half-way is on record too). The record covers a table
    from its creation by the step on (its ``created`` file, made before the first write): a
    table made otherwise (by hand, or before the record was kept) is not covered, and any of
    its partitions may hold rows. Files are only ever added: a dropped and re-created table
    keeps its old ones, which can only make the step read a partition that turns out empty.
    """

    root: Path

    @classmethod
    def of(cls, storage_root: StorageRoot, table: str) -> WrittenPartitions:
        """The record of ``table`` in ``storage_root``."""
        return cls(storage_root.state / LAYER / "written" / table)

    def may_hold_rows(self, run_date: date) -> bool:
        """False only when the record covers the table and has no write of ``run_date``."""
        return not (self.root / CREATED).exists() or (self.root / run_date.isoformat()).exists()

    def creating(self) -> None:
        """Record that the step is creating the table: the record covers it from now on."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / CREATED).touch()

    def writing(self, run_date: date) -> bool:
        """Record that the step is writing partition ``run_date``; False when it was on record
        already (written before, or by another run at this moment)."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            (self.root / run_date.isoformat()).touch(exist_ok=False)
        except FileExistsError:
            return False
        return True


def _occupied(
    lakehouse: Lakehouse, run_date: date, writes: Sequence[PartitionWrite]
) -> set[str]:
    """The tables whose partition ``_proc_date = run_date`` holds at least one row."""
    probes = [
        lakehouse.read(write.table)
        .where(sf.col(PROC_DATE) == sf.lit(run_date))
        .select(sf.lit(write.table).alias("table"))
        .limit(1)
        for write in writes
    ]
    if not probes:
        return set()
    return {row["table"] for row in functools.reduce(DataFrame.union, probes).collect()}


def _write_partition(
    lakehouse: Lakehouse, write: PartitionWrite, run_date: date, *, empty: bool = False
) -> int:
    """Replace the partition with ``write.frame``; the rows written, counted as they are.

    A partition known to be ``empty`` is appended to: Delta then has no files to find and
    remove, and so no need of the table's state (its reconstruction, after the commit before).
    """

    def replace(frame: DataFrame) -> None:
        if empty:
            lakehouse.write(frame, write.table, mode="append", partition_by=PARTITION_COLUMNS)
            return
        lakehouse.write(
            frame,
            write.table,
            mode="overwrite",
            partition_by=PARTITION_COLUMNS,
            replace_where=f"{PROC_DATE} = DATE'{run_date.isoformat()}'",
        )

    counts = counted_while(write.frame, [sf.count(sf.lit(1)).alias("rows")], replace)
    return int(counts["rows"])


def _digests(
    lakehouse: Lakehouse, run_date: date, writes: Sequence[PartitionWrite]
) -> dict[str, tuple[int, Any]]:
    """Row count and 64-bit row-hash sum of each table's current partition and of its new rows.

    Keys: the table (current partition) and ``<table>#new`` (new rows, when there are any).
    One aggregation over every side; maps are hashed as their sorted entries, since Spark
    refuses to hash a map. ``_run_id`` is left out.
    """
    sides: list[DataFrame] = []
    compared: list[str] = []
    for write in writes:
        columns = [name for name in write.frame.columns if name != RUN_ID]
        current = lakehouse.read(write.table).where(sf.col(PROC_DATE) == sf.lit(run_date))
        if not set(columns) <= set(current.columns):
            continue  # a column the table lacks: the rows differ, whatever they are
        compared.append(write.table)
        labelled = [(write.table, current.select(*columns))]
        if write.rows:
            labelled.append((f"{write.table}#new", write.frame.select(*columns)))
        hashable = [
            sf.array_sort(sf.map_entries(sf.col(field.name)))
            if isinstance(field.dataType, MapType)
            else sf.col(field.name)
            for field in write.frame.schema.fields
            if field.name != RUN_ID
        ]
        sides += [
            frame.select(sf.lit(label).alias("side"), sf.xxhash64(*hashable).alias("row_hash"))
            for label, frame in labelled
        ]
    if not sides:
        return {}
    union = functools.reduce(DataFrame.unionByName, sides)
    found = {
        row["side"]: (int(row["rows"]), row["hash_sum"])
        for row in union.groupBy("side")
        .agg(
            sf.count(sf.lit(1)).alias("rows"),
            sf.sum(sf.col("row_hash").cast(DecimalType(38, 0))).alias("hash_sum"),
        )
        .collect()
    }
    for table in compared:  # an empty partition has no row in the result
        found.setdefault(table, (0, None))
    return found


def _evolve_schema(lakehouse: Lakehouse, table: str, schema: StructType) -> None:
    """Add the columns an additive contract change introduced; refuse a changed type.

    Done explicitly (``ALTER TABLE ADD COLUMNS``) rather than by a session-wide auto-merge
    setting, so no other write in the session can widen a table by accident.
    """
    if not lakehouse.exists(table):
        return
    existing = {field.name: field for field in lakehouse.read(table).schema.fields}
    changed = [
        f"{field.name} is {existing[field.name].dataType.simpleString()} in the table, "
        f"{field.dataType.simpleString()} now"
        for field in schema.fields
        if field.name in existing and existing[field.name].dataType != field.dataType
    ]
    if changed:
        raise ContractViolation(
            f"{table}: expected the existing table's column types to match the contract; "
            f"{'; '.join(changed)}. A breaking contract change needs a new table: drop "
            f"{table} and backfill it from raw"
        )
    added = [field for field in schema.fields if field.name not in existing]
    if added:
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in added)
        lakehouse.spark.sql(f"ALTER TABLE {lakehouse.name(table)} ADD COLUMNS ({columns})")


def _log_drift(
    unknown: DataFrame,
    contract: Contract,
    profile: LoadProfile,
    run_date: date,
    storage_root: StorageRoot,
    entry: BronzeTable,
    load: str,
) -> None:
    """Write (or clear) the drift log from the load's unknown fields."""
    report = None
    if profile.records_with_unknown:
        report = drift_report(
            contract,
            proc_date=run_date,
            load=load,
            records=profile.records,
            fields=count_unknown_fields(unknown).collect(),
        )
    write_drift_report(drift_path(storage_root, run_date, entry.name), report)


def _relative(path: Path, storage_root: StorageRoot) -> str:
    """``path`` relative to the storage root, as stored in ``_source_file``."""
    try:
        return Path(path).resolve().relative_to(storage_root.path).as_posix()
    except ValueError:
        return Path(path).as_posix()
