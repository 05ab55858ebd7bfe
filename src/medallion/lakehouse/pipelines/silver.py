"""bronze → silver, one generic step driven by each table's spec (``config/dq/silver``).

For a run date the step reads the bronze partitions of that ``_proc_date`` (every partition on a
full refresh). A source that sends every record in each load (``build.full_loads``) loses the
records the load before sent too (the last load the table was built from, ``BuiltLoads``; on a
full refresh each load's predecessor): that load settled them. The spec's transformations follow.
When the source sends every row daily (``build.skip_unchanged``), the rows the table already
holds are counted and set aside. The rest get the lookups and the expectations in one pass; a
valid row older than the table's version is dropped, exact copies and older versions among the
others are marked; the latest row per key is MERGEd (an older version never wins) and the
quarantine table's partition of that date replaced.
Rows an earlier day quarantined only because a lookup found no parent are checked again with the
day's rows once that parent exists, and leave the quarantine when merged, so a daily run ends
where a full refresh would. Re-running a day changes nothing; counts conserve: rows in (the day's
bronze rows and those re-checked) = merged + quarantined + dropped by named rules (``unchanged``
among them).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import StringType

from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.lineage import lineage_job
from medallion.lakehouse.lineage.steps import StepLineage, tables_lineage
from medallion.lakehouse.pipelines import StepResult
from medallion.lakehouse.quality.engine import (
    ERRORS_COLUMN,
    RUN_ID_COLUMN,
    add_lookups,
    sample_quarantined,
)
from medallion.lakehouse.quality.event_log import check_and_log
from medallion.lakehouse.quality.spec import (
    Action,
    TableSpec,
    build_order,
    load_specs,
    spec_for,
    transform_of,
)
from medallion.lakehouse.spark import computed_once, computed_once_each, counted_while
from medallion.lakehouse.tables import SMALL_TABLE_BYTES, Lakehouse
from medallion.lakehouse.transforms.silver.dedupe import (
    DROP_RULE_COLUMN,
    DROP_RULES,
    UNCHANGED,
    history_digests,
    mark_unchanged,
    mark_versions,
    new_in_load,
    with_digests,
    without_resent,
)

PROC_DATE = "_proc_date"
# Where each kept row came from; not part of what counts as a change (see Lakehouse.merge).
LINEAGE_COLUMNS = ("_source_file", "_ingest_ts", PROC_DATE)
LAYER = "silver"
# What bronze adds to a source's record, besides the partition (not part of the record's content).
BRONZE_METADATA = ("_source_file", "_ingest_ts", RUN_ID_COLUMN)
# A full load's rows are taken (the new ones) or left out (the resent ones) by their digests, and
# the table's rows a day's rows are compared with found by their keys, sent whole to every task
# (no shuffle of the rows) up to this many: 12-16 bytes a digest, a few tens a key.
BROADCAST_ROWS = 2_000_000
# A day's rows are sent whole to every task of its MERGE up to this many (a few hundred bytes a
# row: ~150 MB at most): ``Lakehouse.merge``'s ``broadcast``, and its ``held`` updates.
MERGE_BROADCAST_ROWS = 500_000
# From this size on, a table's updates are merged apart from its new rows (``held``); a smaller
# table takes one MERGE, one commit.
MERGE_APART_MIN_BYTES = SMALL_TABLE_BYTES
# Silver records what each commit changed (the change data feed), so gold rebuilds only the
# rows a day's changes touch (``pipelines/gold.py``); a MERGE marks the rows it replaces in a
# deletion vector instead of rewriting every file that holds one.
TABLE_PROPERTIES = {
    "delta.enableChangeDataFeed": "true",
    "delta.enableDeletionVectors": "true",
}
# A quarantine's rows leave it when their late parent arrives (a MERGE that deletes them):
# marked in a deletion vector, not by rewriting the files that hold them. Set when the table is
# created (or refreshed whole).
QUARANTINE_PROPERTIES = {"delta.enableDeletionVectors": "true"}


@dataclass(frozen=True)
class SilverTable:
    """How the generic step builds one silver table: its spec, and what the spec's ``build``
    section makes of it."""

    spec: TableSpec

    @property
    def dataset(self) -> str:
        """The table's full name."""
        return self.spec.dataset

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's columns: business columns, then tie-break and lineage columns."""
        build = self.spec.build
        return (*build.columns, *build.extra_columns, *LINEAGE_COLUMNS)

    @property
    def sequence_by(self) -> tuple[str, ...]:
        """Which version of a key wins: the spec's ``sequence_by``, then ``build.tie_break``."""
        return (*([self.spec.sequence_by] if self.spec.sequence_by else []),
                *self.spec.build.tie_break)

    def prepare(self, sources: Mapping[str, DataFrame]) -> DataFrame:
        """The input rows in one shape: the transform applied to the sources (in spec order),
        or the one source's rows."""
        transform = transform_of(self.spec)
        frames = [sources[source] for source in self.spec.sources]
        return transform(*frames) if transform is not None else frames[0]

    def mark_versions(self, valid: DataFrame) -> DataFrame:
        """The checked rows with ``_drop_rule``: exact copies and older versions marked."""
        return mark_versions(valid, self.spec.keys, self.sequence_by,
                             self.spec.build.keep_current_when_null)


def silver_tables() -> list[SilverTable]:
    """The silver tables, one per spec in ``config/dq/silver``, in build order (a table after
    the silver tables it reads or looks up)."""
    return [SilverTable(spec) for spec in build_order(load_specs(LAYER).values())]


def silver_table(dataset: str) -> SilverTable:
    """The silver table ``dataset`` (``silver.fact_orders``)."""
    spec = spec_for(dataset)
    if spec.layer != LAYER:
        raise ConfigError(f"{dataset}: expected a silver table, found a {spec.layer} one")
    return SilverTable(spec)


def update_silver_lineage(lakehouse: Lakehouse, dataset: str, **_: object) -> StepLineage:
    """``update_silver`` reads the spec's sources and lookup tables, writes the table and its
    quarantine table."""
    spec = spec_for(dataset)
    return tables_lineage(
        f"update_silver.{spec.name}", lakehouse,
        inputs=[*spec.sources, *(lookup.table for lookup in spec.lookups)],
        outputs=[spec.dataset, spec.quarantine_table],
    )


@lineage_job(update_silver_lineage)
def update_silver(
    lakehouse: Lakehouse,
    dataset: str,
    run_date: date,
    *,
    run_id: str,
    job: str = "build_analytics",
    task: str | None = None,
    full_refresh: bool = False,
) -> StepResult:
    """Build ``dataset``'s rows of ``run_date`` (all dates on ``full_refresh``) into silver."""
    table = silver_table(dataset)
    spec = table.spec
    bronze = {
        source: _bronze_rows(lakehouse, source, None if full_refresh else run_date)
        for source in spec.sources
    }
    task_name = task or dataset.split(".")[1]
    incremental = not full_refresh and lakehouse.exists(dataset)
    loads = {source: BuiltLoads.of(lakehouse, dataset, source) for source in spec.build.full_loads}
    if not incremental:  # the table is built anew: so is the record of what it was built from
        for record in loads.values():
            record.restart()
    # The checked and the marked rows are kept for the step's few actions, except on a first
    # build or a full refresh of large sources: there they are millions of wide rows, which cost
    # more to store in the block store than to compute again (a scan of the partitions, a
    # broadcast lookup). A daily increment is small either way, and what its MERGE reads is
    # better kept. `make bench` at scale 1, a full refresh of silver.fact_events (5M rows):
    # 37.4-37.7 s kept, 31.0-31.5 s not; its day 2 (50k rows): 9.1-10.1 s kept, 11.0-11.4 s not.
    keep = spec.build.persist and (incremental or lakehouse.is_small(*spec.sources))
    with ExitStack() as step:
        counts_unchanged = spec.build.skip_unchanged or bool(loads)
        unchanged: dict[str, int] = {UNCHANGED: 0} if counts_unchanged else {}
        # A full load's records that the load before sent too were settled by it: left out
        # before anything else, and counted as unchanged.
        built_from: dict[str, list[date]] = {}
        for source, record in loads.items():
            bronze[source], built_from[source], resent = _new_in_loads(
                lakehouse, step, bronze[source], record, run_date, whole=full_refresh)
            unchanged[UNCHANGED] += resent
        prepared = spec.apply_transformations(table.prepare(bronze))
        # Each lookup table read once, for every query of the step that looks rows up in it,
        # and the rows the table holds already set aside: computed at once (independent).
        # Rows older than the table's version ride through the checks marked (``_drop_rule``).
        set_aside = spec.build.skip_unchanged and incremental
        kept_first = {lookup.table: lakehouse.read(lookup.table) for lookup in spec.lookups}
        keep_first = {name: lakehouse.is_small(name) for name in kept_first}
        if set_aside:
            # The day's rows, few once the full loads' resent rows are left out: computed once,
            # so that their keys can narrow the table's rows they are compared with.
            prepared = step.enter_context(computed_once(prepared, keep=spec.build.persist))
            few = spec.build.persist and prepared.count() <= BROADCAST_ROWS
            kept_first[_SET_ASIDE] = _marked_unchanged(lakehouse, table, prepared, few=few)
            keep_first[_SET_ASIDE] = spec.build.persist
        computed = computed_once_each(step, kept_first, keep=keep_first)
        lookup_tables = {lookup.table: computed[lookup.table] for lookup in spec.lookups}
        held_keys = None  # the day's keys the table holds already
        if set_aside:
            prepared, held, held_keys = _without_unchanged(computed[_SET_ASIDE], spec.keys)
            unchanged[UNCHANGED] += held
        # Checked and quarantined in one pass (the counts are taken while the quarantine is
        # written), then marked, counted and merged: the input and the marked rows are each
        # computed once.
        looked_up_rows = add_lookups(prepared, spec.lookups, lookup_tables)
        readmitted = None
        readmitted_from: list[date] = []  # the quarantine partitions they wait in
        if incremental:
            readmitted = _parents_found_since(lakehouse, spec, lookup_tables, run_date)
        if readmitted is not None:
            # Kept as found before the quarantine is written; a day that finds none leaves the
            # quarantine alone (no MERGE that deletes nothing).
            readmitted = step.enter_context(computed_once(readmitted, keep=spec.build.persist))
            readmitted_from = sorted(
                row[0] for row in readmitted.select(PROC_DATE).distinct().collect())
            if not readmitted_from:
                readmitted = None
        if readmitted is not None:
            if set_aside:
                readmitted = readmitted.withColumn(
                    DROP_RULE_COLUMN, sf.lit(None).cast(StringType()))
            looked_up_rows = looked_up_rows.unionByName(readmitted)
        looked_up = step.enter_context(computed_once(looked_up_rows, keep=keep))
        checked = check_and_log(
            lakehouse,
            looked_up,
            spec,
            run_id=run_id,
            job=job,
            task=task_name,
            write_quarantine=lambda rows: _write_quarantine(
                lakehouse, spec, rows.drop(DROP_RULE_COLUMN), run_date, full_refresh
            ),
        )
        # What the notebook shows of the quarantine, from the rows just written (in memory): a
        # read of the table after this step's commits to it cost 0.7-1.4 s of Delta planning
        # (silver.dim_customer, fact_orders, fact_events on `make bench`'s small day).
        sample = sample_quarantined(
            checked.quarantined.drop(DROP_RULE_COLUMN).where(sf.col(PROC_DATE) == sf.lit(run_date))
        ) if checked.metrics.rows_quarantined else None
        if set_aside:  # a valid row older than the table's version is dropped, not deduplicated
            fresh = sf.col(DROP_RULE_COLUMN).isNull()
            marked_rows = table.mark_versions(
                checked.valid.where(fresh).drop(DROP_RULE_COLUMN)
            ).unionByName(checked.valid.where(~fresh))
        else:
            marked_rows = table.mark_versions(checked.valid)
        marked = step.enter_context(computed_once(marked_rows, keep=keep))
        if not incremental:
            # The dedupe counts come from the write's own pass.
            counts = counted_while(
                marked,
                _drop_rule_counts(),
                lambda rows: lakehouse.write(
                    rows.where(sf.col(DROP_RULE_COLUMN).isNull()).select(*table.columns),
                    dataset,
                    mode="overwrite",
                    properties=TABLE_PROPERTIES,
                ),
            )
            drops = {rule: int(counts[rule]) for rule in DROP_RULES}
        else:
            # A separate count: MERGE runs its source as SQL over a temporary view, where a
            # Spark Connect client cannot observe it.
            drops = _count_drop_rules(marked)
            kept_rows = checked.metrics.rows_valid - sum(drops.values())
            kept = marked.where(sf.col(DROP_RULE_COLUMN).isNull()).select(*table.columns)
            lakehouse.set_properties(dataset, TABLE_PROPERTIES)  # a table from before them
            lakehouse.merge(
                kept,
                dataset,
                keys=spec.keys,
                sequence_by=table.sequence_by,
                keep_current_when_null=spec.build.keep_current_when_null,
                compare_columns=spec.build.columns,
                held=held_keys if _updates_merged_apart(lakehouse, dataset, held_keys) else None,
                broadcast=kept_rows <= MERGE_BROADCAST_ROWS,
            )
    if readmitted is not None:  # merged: they leave the quarantine
        # Only the partitions they were quarantined in are read (the quarantine of a full load
        # grows by a partition a day).
        lakehouse.delete_matching(
            spec.quarantine_table,
            readmitted,
            on=_quarantined_row_identity(spec),
            where=f"{_waiting_for_parents(spec, run_date, alias='t')} "
            f"AND {_in_partitions(readmitted_from, alias='t')}",
        )
    for source, record in loads.items():
        record.built(built_from[source])
    metrics = checked.metrics
    written = metrics.rows_valid - sum(drops.values())
    return StepResult(
        step=f"update_{task_name}",
        target=dataset,
        rows_in=metrics.rows_in + sum(unchanged.values()),
        rows_written=written,
        rows_quarantined=metrics.rows_quarantined,
        rows_dropped={**metrics.dropped_by_rule, **drops, **unchanged},
        quarantine_sample=sample,
    )


_SET_ASIDE = "<rows the table holds already>"  # not a table name: no lookup's key


def _marked_unchanged(
    lakehouse: Lakehouse, table: SilverTable, rows: DataFrame, *, few: bool
) -> DataFrame:
    """``rows``, each marked in ``_drop_rule`` when the table already holds it.

    For a table whose source sends every row each day (Snowflake's full load): the rows of a key
    that are all equal to the version the table holds (``mark_unchanged``: the MERGE's own
    comparison) are marked ``unchanged`` and go no further (``_without_unchanged``), so the
    checks, the dedupe and the MERGE see the day's changes only. Checked when it was merged,
    such a row is not checked again; a row that failed a check is not in the table and is
    checked, and quarantined, again. A row older than the table's version is marked
    ``superseded_by_newer_version`` (the MERGE would never apply it: after the checks it is
    dropped); any other gets NULL. ``few``: see ``mark_unchanged``.
    """
    spec = table.spec
    return mark_unchanged(
        rows,
        lakehouse.read(spec.dataset),
        spec.keys,
        [*table.sequence_by, *spec.build.columns],
        table.sequence_by,
        few=few,
        held_as=_HELD,
    )


_HELD = "_held"  # whether the table holds the row's key (``_marked_unchanged``)


def _without_unchanged(
    marked: DataFrame, keys: Sequence[str]
) -> tuple[DataFrame, int, DataFrame]:
    """The ``marked`` rows (``_marked_unchanged``, computed once) that are not ``unchanged``, how
    many were, and the keys of theirs that the table holds."""
    unchanged = marked.where(sf.col(DROP_RULE_COLUMN) == sf.lit(UNCHANGED)).count()
    kept = marked.where(~sf.col(DROP_RULE_COLUMN).eqNullSafe(sf.lit(UNCHANGED)))
    return kept.drop(_HELD), unchanged, kept.where(sf.col(_HELD)).select(*keys)


def _updates_merged_apart(lakehouse: Lakehouse, dataset: str, held: DataFrame | None) -> bool:
    """Whether the rows of the ``held`` keys go to a MERGE of their own (``Lakehouse.merge``):
    when the table is large enough for its files' shuffle to cost more than a second commit, and
    they are few enough to send whole to every task."""
    if held is None or lakehouse.size_in_bytes(dataset) < MERGE_APART_MIN_BYTES:
        return False
    return 0 < held.count() <= MERGE_BROADCAST_ROWS


@dataclass(frozen=True)
class BuiltLoads:
    """The loads (bronze ``_proc_date`` partitions) of a full-load source that a silver table
    has been built from, the latest one settled by the step.

    A file per load, ``<state>/silver/built/<table>/<source>/<date>``, made after the step's
    commits: a step that fails leaves its load off the record, and the next day compares with the
    load before it (its rows are checked again, never lost). The record starts anew when the step
    builds the table whole (a first build or a full refresh), before it writes; a table made
    otherwise has no record, and its rows are compared with the table alone.
    """

    root: Path
    source: str

    @classmethod
    def of(cls, lakehouse: Lakehouse, table: str, source: str) -> BuiltLoads:
        """The record of ``table``'s loads of ``source``."""
        return cls(lakehouse.storage_root.state / LAYER / "built" / table / source, source)

    def last_before(self, run_date: date) -> date | None:
        """The latest load on record before ``run_date``; None when there is none."""
        if not self.root.is_dir():
            return None
        days = [date.fromisoformat(path.name) for path in self.root.iterdir()]
        return max((day for day in days if day < run_date), default=None)

    def restart(self) -> None:
        """Forget every load: the table is being built anew."""
        shutil.rmtree(self.root, ignore_errors=True)

    def built(self, days: Sequence[date]) -> None:
        """Record that the table holds what the loads of ``days`` brought."""
        self.root.mkdir(parents=True, exist_ok=True)
        for day in days:
            (self.root / day.isoformat()).touch()


def _new_in_loads(
    lakehouse: Lakehouse,
    step: ExitStack,
    rows: DataFrame,
    record: BuiltLoads,
    run_date: date,
    *,
    whole: bool,
) -> tuple[DataFrame, list[date], int]:
    """A full-load source's ``rows`` without those the load before theirs sent too; the loads
    they are, and how many rows were left out.

    A day's rows are compared with the latest load on ``record`` before it (all of them kept
    when there is none): the digests of the new ones are found from the two loads' digests alone
    (``new_in_load``) and kept, and the day's rows are taken by them. A whole history
    (``whole``) compares each load with the one before it at once (``history_digests``) and
    leaves out the resent rows (``without_resent``).
    """
    if whole:
        days = sorted(row[0] for row in rows.select(PROC_DATE).distinct().collect())
        if len(days) < 2:
            return rows, days, 0
        history = step.enter_context(computed_once(history_digests(
            rows, dict(itertools.pairwise(days)), load=PROC_DATE, ignored=BRONZE_METADATA)))
        new, left_out = without_resent(rows, history, first=days[0], load=PROC_DATE,
                                       ignored=BRONZE_METADATA, broadcast_rows=BROADCAST_ROWS)
        return new, days, left_out
    ignored = (*BRONZE_METADATA, PROC_DATE)
    previous = record.last_before(run_date)
    if previous is None:
        return rows, [run_date], 0
    digests = step.enter_context(computed_once(new_in_load(
        rows, _bronze_rows(lakehouse, record.source, previous), ignored=ignored)))
    fresh = digests.count()
    new = with_digests(rows, digests, ignored=ignored, broadcast=fresh <= BROADCAST_ROWS)
    return new, [run_date], rows.count() - fresh


def _lookup_rules(spec: TableSpec) -> list[str]:
    """The names of the quarantine rules that only ask whether a lookup found the row's parent."""
    lookups = {lookup.name for lookup in spec.lookups}
    return [rule.name for rule in spec.expectations_for(Action.QUARANTINE)
            if rule.expression.strip() in lookups]


def _waiting_for_parents(spec: TableSpec, run_date: date, *, alias: str = "") -> str:
    """SQL: a quarantined row of an earlier partition that failed lookup rules only."""
    prefix = f"{alias}." if alias else ""
    rules = ", ".join(f"'{name}'" for name in _lookup_rules(spec))
    return (
        f"{prefix}`{PROC_DATE}` <> DATE'{run_date.isoformat()}' "
        f"AND size({prefix}`{ERRORS_COLUMN}`) > 0 "
        f"AND forall({prefix}`{ERRORS_COLUMN}`, error -> error.name IN ({rules}))"
    )


def _in_partitions(dates: Sequence[date], *, alias: str) -> str:
    """SQL: a row of one of the ``dates`` partitions (``_proc_date``)."""
    days = ", ".join(f"DATE'{day.isoformat()}'" for day in dates)
    return f"{alias}.`{PROC_DATE}` IN ({days})"


def _quarantined_row_identity(spec: TableSpec) -> list[str]:
    """The columns that tell one quarantined row from another: keys, file, partition."""
    return [*spec.keys, "_source_file", PROC_DATE]


def _parents_found_since(
    lakehouse: Lakehouse, spec: TableSpec, lookup_tables: Mapping[str, DataFrame], run_date: date
) -> DataFrame | None:
    """Rows quarantined on earlier days only because a lookup found no parent, whose every
    parent exists now (a customer the CRM sent after its orders), ready to be checked again.

    Full refresh reads them again from bronze and keeps them; a daily run takes them from the
    quarantine, so both end with the same silver. Grain: as the quarantine. Columns: the checked
    frame's (the quarantine's without ``_errors`` and ``_run_id``, the lookups recomputed).
    None when the table has no lookup rule or no quarantine yet.
    """
    if not _lookup_rules(spec) or not lakehouse.exists(spec.quarantine_table):
        return None
    flags = [lookup.name for lookup in spec.lookups]
    waiting = (
        lakehouse.read(spec.quarantine_table)
        .where(_waiting_for_parents(spec, run_date))
        .drop(ERRORS_COLUMN, RUN_ID_COLUMN, *flags)
    )
    found = add_lookups(waiting, spec.lookups, lookup_tables)
    return found.where(" AND ".join(f"`{flag}`" for flag in flags))


def _bronze_rows(lakehouse: Lakehouse, table: str, run_date: date | None) -> DataFrame:
    """A bronze table's rows of ``run_date``'s partition, or all of them."""
    rows = lakehouse.read(table)
    if run_date is None:
        return rows
    return rows.where(sf.col(PROC_DATE) == sf.lit(run_date))


def _drop_rule_counts() -> list[Column]:
    """Per dedupe rule, the rows it marks, as aggregates (every rule present, 0 when none)."""
    return [
        sf.count_if(sf.col(DROP_RULE_COLUMN) == sf.lit(rule)).alias(rule) for rule in DROP_RULES
    ]


def _count_drop_rules(marked: DataFrame) -> dict[str, int]:
    """Rows marked by each dedupe rule, in one aggregation."""
    counts = marked.agg(*_drop_rule_counts()).first()
    return {rule: int(counts[rule]) if counts is not None else 0 for rule in DROP_RULES}


def _write_quarantine(
    lakehouse: Lakehouse,
    spec: TableSpec,
    quarantined: DataFrame,
    run_date: date,
    full_refresh: bool,
) -> None:
    """Replace the quarantine table's partition of ``run_date`` (all of it on a full refresh)."""
    if full_refresh or not lakehouse.exists(spec.quarantine_table):
        lakehouse.write(quarantined, spec.quarantine_table, mode="overwrite",
                        partition_by=[PROC_DATE], properties=QUARANTINE_PROPERTIES)
        return
    lakehouse.write(
        quarantined,
        spec.quarantine_table,
        mode="overwrite",
        partition_by=[PROC_DATE],
        replace_where=f"{PROC_DATE} = DATE'{run_date.isoformat()}'",
    )
