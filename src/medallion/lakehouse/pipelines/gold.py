"""silver → gold: rebuild each gold table from silver, check it, and only then replace it.

Gold fails the pipeline instead of quarantining: the spec's ``expect_or_fail`` rules, primary-key
uniqueness, foreign keys into silver and "every order has a USD rate" are checked on the new
table's rows before anything is written, so a violation leaves the previous gold version in place
and stops the job before publish. The same rules are Delta CHECK constraints on the table, so no
other writer can break them either. A rebuild that yields the same rows writes nothing: the table
keeps its Delta version, which is what publishing is keyed on.

A table whose spec names ``build.incremental`` is rebuilt in part once it exists: silver keeps a
change data feed, the step records which silver versions each build read
(``<state>/gold/<table>.json``), and the next build reads only what changed since, asks the
spec's function which gold rows those changes touch (a ``GoldSlice``), recomputes just those
(from their silver rows, or by adding the changes to a table of sums) and MERGEs them in on the
table's keys, leaving the others as they are. The expectations run on the recomputed rows (the
others passed them when written, and the table's CHECK constraints hold them); keys, foreign
keys and grain are checked on what the table will hold, before the MERGE. A full rebuild
happens on the first build, when a source was overwritten, restored or lost its feed since, when
the table itself was written by anything else, while its sources are too small for a partial
build to pay (``INCREMENTAL_MIN_BYTES``), and on ``full_rebuild=True``.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf

from medallion.lakehouse.credentials import SecretProvider
from medallion.lakehouse.environment import Environment
from medallion.lakehouse.errors import ConfigError, ExpectationFailed
from medallion.lakehouse.lineage import lineage_job
from medallion.lakehouse.lineage.observe import observe_output_frame
from medallion.lakehouse.lineage.steps import StepLineage, tables_lineage
from medallion.lakehouse.pipelines import StepResult
from medallion.lakehouse.quality.event_log import check_and_log
from medallion.lakehouse.quality.spec import (
    Action,
    Reference,
    TableSpec,
    build_order,
    incremental_of,
    load_specs,
    spec_for,
    transform_of,
)
from medallion.lakehouse.spark import (
    GOLD_INCREMENTAL_MIN_BYTES_CONF,
    computed_once,
    computed_once_each,
)
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Commit, Lakehouse, is_small_size, retry_on_conflict
from medallion.lakehouse.transforms.gold import (
    GoldSlice,
    duplicate_keys,
    missing_references,
    semi_join,
)
from medallion.lakehouse.transforms.gold.fx import unconverted_orders
from medallion.lakehouse.transforms.gold.masking import hash_id

LAYER = "gold"
SALT_KEY = "pii-hash-salt"
EXAMPLES = 5
HISTORY_LIMIT = 100  # commits of a source looked back over; more since the last build: rebuild
# Below this many bytes of sources (their data files, from the Delta log) a table is rebuilt whole
# even when it could be built in part: a partial build pays a fixed cost of its own (change feeds,
# a persisted scope, a MERGE, a compare) that only a large table earns back. Measured on
# fact_customer_360: at demo scale (0.9 MB of sources) a partial build took 13.1 s and a whole one
# 9.8 s; at the at-scale benchmark's scale 1 (5M events, 1.3M orders: roughly 185 MB) 19-22 s
# against 15-17 s; at scale 10 the incremental day cost 0.44x a rebuild. A session (or cluster)
# sets its own with the Spark conf ``spark.medallion.gold.incrementalMinBytes``; 0 builds in
# part whatever the size.
INCREMENTAL_MIN_BYTES = 256 * 1024 * 1024
log = logging.getLogger(__name__)


def pii_hash_salt(storage_root: StorageRoot, secrets: SecretProvider | None = None) -> str:
    """The salt of gold's hashed ids: the secret ``pii-hash-salt`` from ``secrets``.

    ``secrets`` defaults to the provider of the environment resolved for ``storage_root``; the
    local target's generates the salt once per storage root when none is set.
    """
    salt = (secrets or Environment.resolve(storage_root).secrets).get(SALT_KEY)
    if not salt:  # the provider raises when there is no value; an empty one is no salt either
        raise ConfigError(f"secret {SALT_KEY}: expected a non-empty salt, found none")
    return salt


def build_gold_lineage(lakehouse: Lakehouse, dataset: str, **_: object) -> StepLineage:
    """``build_gold`` reads the spec's sources and lookup tables and writes the table."""
    spec = spec_for(dataset)
    return tables_lineage(
        f"build_gold.{spec.name}", lakehouse,
        inputs=[*spec.sources, *(lookup.table for lookup in spec.lookups)],
        outputs=[spec.dataset],
    )


@lineage_job(build_gold_lineage)
def build_gold(
    lakehouse: Lakehouse,
    dataset: str,
    *,
    run_id: str,
    salt: str,
    job: str = "build_analytics",
    task: str | None = None,
    full_rebuild: bool = False,
) -> StepResult:
    """Build ``dataset`` (a spec of ``config/dq/gold``) from silver by its ``build.transform``:
    in part when its ``build.incremental`` can say which rows changed, else whole."""
    spec = gold_spec(dataset)
    # Each source read at one version: the one the build is then recorded as having read.
    versions = {source: lakehouse.version(source) for source in spec.sources}
    silver = {source: lakehouse.read(source, version=versions[source]) for source in spec.sources}
    source_bytes = sum(lakehouse.size_in_bytes(source, version=versions[source])
                       for source in spec.sources)
    task_name = task or spec.name
    piece = None if full_rebuild else incremental_slice(lakehouse, spec, versions, silver, salt,
                                                        source_bytes=source_bytes)
    with ExitStack() as kept_frames:  # rows computed once (computed_once), for the whole build
        if piece is None:
            # The table's column lineage is the transform's plan over the source tables (a
            # plan, never run), whether or not the build reads them from memory.
            observe_output_frame(dataset, gold_rows(spec, silver, salt))
            # Small sources are read once, for the transform, the USD check, keys and references.
            keep = is_small_size(source_bytes)
            sources = computed_once_each(kept_frames, silver, keep=keep)
            rows = kept_frames.enter_context(computed_once(gold_rows(spec, sources, salt)))
            rows_in, rows_written = _check(lakehouse, spec, rows, rows, sources, sources, salt,
                                           run_id=run_id, job=job, task=task_name)
            if not lakehouse.exists(dataset):
                # Created with its CHECK constraints in the same commit, which enforces them on
                # these rows too: one commit instead of one ALTER TABLE (and a table scan) per
                # rule.
                lakehouse.write(rows, dataset, mode="overwrite", properties={
                    f"{CONSTRAINT_PROPERTY}{name}": expression
                    for name, expression in check_constraints(spec).items()
                })
            elif not same_rows(rows, lakehouse.read(dataset)):
                # Unchanged gold keeps its Delta version, so publishing it again is a no-op.
                lakehouse.write(rows, dataset, mode="overwrite")
        else:
            # What the changes touch is computed once, for the inputs, the keys and the compare;
            # the recomputed rows once, for the checks, the compare and the MERGE.
            scope = kept_frames.enter_context(computed_once(piece.scope))
            keys, inputs = piece.keys(scope), piece.sources(scope)
            current = lakehouse.read(dataset)
            replaced = semi_join(current, keys)
            built = (gold_rows(spec, inputs, salt) if piece.rows is None
                     else piece.rows(scope, replaced))
            rows = kept_frames.enter_context(computed_once(built))
            # The table's column lineage is the transform's over all of silver (a plan, never
            # run), not the partial one's, which reads the table itself.
            observe_output_frame(dataset, gold_rows(spec, silver, salt))
            table = current.join(keys, _key_match(current, keys, spec.keys), "left_anti")
            rows_in, rows_written = _check(lakehouse, spec, rows, table.unionByName(rows),
                                           inputs, silver, salt,
                                           run_id=run_id, job=job, task=task_name)
            if not same_rows(rows, replaced):
                lakehouse.replace_keys(rows, dataset, keys=spec.keys, replaced=keys)
    add_check_constraints(lakehouse, spec)  # a table made before a rule was added gets it now
    record_build(lakehouse, spec, versions, incremental=piece is not None)
    return StepResult(
        step=f"build_{task_name}", target=dataset, rows_in=rows_in, rows_written=rows_written
    )


def _check(
    lakehouse: Lakehouse,
    spec: TableSpec,
    rows: DataFrame,
    table: DataFrame,
    inputs: Mapping[str, DataFrame],
    silver: Mapping[str, DataFrame],
    salt: str,
    *,
    run_id: str,
    job: str,
    task: str,
) -> tuple[int, int]:
    """Check the built ``rows`` before anything is written; the grain's conservation counts.

    The expectations run on ``rows`` (all of the table on a full build, the recomputed rows on a
    partial one: the rows kept passed them when written, and the table's CHECK constraints hold
    them). Key, reference and grain are checked on ``table``, what the table will hold. Every
    order of ``inputs`` must have a USD rate when the spec says so.
    """
    if spec.build.usd_rates is not None:
        usd = spec.build.usd_rates
        _require_usd_rates(inputs[usd.orders], silver[usd.rates], spec.dataset)
    check_and_log(lakehouse, rows, spec, run_id=run_id, job=job, task=task)
    return check_integrity(table, spec, silver, salt)


def _key_match(rows: DataFrame, keys: DataFrame, columns: Sequence[str]) -> Column:
    """``rows``' key columns equal to ``keys``' (NULL-safe), as a join condition."""
    condition = sf.lit(True)
    for name in columns:
        condition = condition & rows[name].eqNullSafe(keys[name])
    return condition


# --- incremental builds -----------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltFrom:
    """What a gold table's last build read: each source's Delta version, and the table's own
    version once written (a later version means another writer: the next build is whole)."""

    table_version: int
    sources: Mapping[str, int]
    incremental: bool = False  # whether that build recomputed only the rows changes touched


def built_from_path(storage_root: StorageRoot, dataset: str) -> Path:
    """Where the last build of ``dataset`` is recorded: ``<state>/gold/<table>.json``."""
    return storage_root.state / LAYER / f"{dataset.split('.', 1)[1]}.json"


def read_built_from(storage_root: StorageRoot, dataset: str) -> BuiltFrom | None:
    """The recorded last build of ``dataset``; None when there is none (or it is unreadable)."""
    path = built_from_path(storage_root, dataset)
    try:
        document = json.loads(path.read_text())
        return BuiltFrom(int(document["table_version"]),
                         {name: int(version) for name, version in document["sources"].items()},
                         bool(document.get("incremental", False)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_build(
    lakehouse: Lakehouse, spec: TableSpec, versions: Mapping[str, int], *, incremental: bool
) -> None:
    """Record that the table now reflects ``versions`` of its sources (after it was written:
    a build that fails leaves the previous record, and the next build redoes the changes)."""
    path = built_from_path(lakehouse.storage_root, spec.dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    table_version = lakehouse.version(spec.dataset)
    staged = path.with_suffix(".json.tmp")
    staged.write_text(json.dumps(
        {"table": spec.dataset, "table_version": table_version, "sources": dict(versions),
         "incremental": incremental},
        indent=2, sort_keys=True,
    ) + "\n")
    staged.replace(path)


def incremental_slice(
    lakehouse: Lakehouse,
    spec: TableSpec,
    versions: Mapping[str, int],
    silver: Mapping[str, DataFrame],
    salt: str,
    *,
    source_bytes: int,
) -> GoldSlice | None:
    """The rows of the table the sources' changes since its last build touch, and their inputs;
    None when the table must be rebuilt whole (and why is logged). ``versions``: the source
    versions the build reads (``silver``); ``source_bytes``: the size of their data files."""
    slice_of = incremental_of(spec)
    if slice_of is None or not lakehouse.exists(spec.dataset):
        return None
    built = read_built_from(lakehouse.storage_root, spec.dataset)
    reason = too_small_reason(lakehouse.spark, source_bytes)  # first: it needs no history
    if reason is None:
        # Each source's commits up to the version read (a writer may have committed since).
        histories = {source: [commit for commit in lakehouse.history(source, limit=HISTORY_LIMIT)
                              if commit.version <= versions[source]]
                     for source in spec.sources}
        reason = whole_rebuild_reason(spec.sources, built, lakehouse.version(spec.dataset),
                                      histories)
    if reason is not None or built is None:
        log.info("%s: rebuilt whole (%s)", spec.dataset, reason)
        return None
    try:
        changes = {
            source: lakehouse.changes(source, after=built.sources[source],
                                      through=versions[source])
            for source in spec.sources
        }
    except AnalysisException as error:  # a version without a change data feed, or vacuumed
        log.info("%s: rebuilt whole (no change data feed: %s)", spec.dataset, error)
        return None
    if "salt" in inspect.signature(slice_of).parameters:
        return slice_of(changes, silver, salt=salt)  # type: ignore[no-any-return]
    return slice_of(changes, silver)  # type: ignore[no-any-return]


def whole_rebuild_reason(
    sources: Sequence[str],
    built: BuiltFrom | None,
    table_version: int,
    histories: Mapping[str, Sequence[Commit]],
) -> str | None:
    """Why the last build (``built``) cannot be brought forward by the ``sources``' change
    feeds, or None when it can. ``table_version``: the gold table's current version;
    ``histories``: each source's latest commits, newest first."""
    if built is None:
        return "no record of its last build"
    if set(built.sources) != set(sources):
        return f"built from {sorted(built.sources)}, its sources are now {list(sources)}"
    if table_version != built.table_version:
        return "written since its last build by something else"
    for source, history in histories.items():
        if not history:  # its latest commits are all newer than the version the build reads
            return f"{source} has more than {HISTORY_LIMIT} commits since"
        since = [commit for commit in history if commit.version > built.sources[source]]
        if history[0].version < built.sources[source]:
            return f"{source} is older than the version last read (recreated)"
        if len(since) == len(history) and history[-1].version > built.sources[source] + 1:
            return f"{source} has more than {HISTORY_LIMIT} commits since"
        rewrites = [commit.version for commit in since if commit.rewrites_table]
        if rewrites:
            return f"{source} was rewritten whole at version {rewrites[0]}"
    return None


def incremental_min_bytes(spark: SparkSession) -> int:
    """The sources' size below which a table is rebuilt whole: the session's
    ``spark.medallion.gold.incrementalMinBytes``, else ``INCREMENTAL_MIN_BYTES``."""
    default = str(INCREMENTAL_MIN_BYTES)
    value = spark.conf.get(GOLD_INCREMENTAL_MIN_BYTES_CONF, default) or default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"{GOLD_INCREMENTAL_MIN_BYTES_CONF}: expected a whole number of bytes, found {value!r}"
        ) from None


def too_small_reason(spark: SparkSession, size: int) -> str | None:
    """Why sources of ``size`` bytes are too small for a partial build to pay, or None when they
    are not (``incremental_min_bytes``)."""
    minimum = incremental_min_bytes(spark)
    if minimum <= 0:
        return None
    if size >= minimum:
        return None
    return (f"its sources hold {size:,} bytes, under {GOLD_INCREMENTAL_MIN_BYTES_CONF} = "
            f"{minimum:,}: a whole build costs less")


def gold_tables() -> list[str]:
    """The gold tables, one per spec in ``config/dq/gold``, in build order."""
    return [spec.dataset for spec in build_order(load_specs(LAYER).values())]


def gold_spec(dataset: str) -> TableSpec:
    """The spec of the gold table ``dataset``."""
    spec = spec_for(dataset)
    if spec.layer != LAYER:
        raise ConfigError(f"{dataset}: expected a gold table, found a {spec.layer} one")
    return spec


def gold_rows(spec: TableSpec, silver: Mapping[str, DataFrame], salt: str) -> DataFrame:
    """The table's new rows: ``build.transform`` called with one frame per source, in the
    spec's order, and ``salt=`` when the function hashes ids (declares ``salt``)."""
    transform = transform_of(spec)
    if transform is None:  # the spec loader requires one; a direct TableSpec may lack it
        raise ConfigError(f"{spec.dataset}: build.transform: expected a function, found none")
    frames = [silver[source] for source in spec.sources]
    if "salt" in inspect.signature(transform).parameters:
        return transform(*frames, salt=salt)
    return transform(*frames)


def same_rows(new: DataFrame, current: DataFrame) -> bool:
    """True when both frames have the same columns (names, types, order) and the same rows."""
    if new.schema.simpleString() != current.schema.simpleString():
        return False
    # Both differences in one job: the multisets are equal when neither has a row left.
    return new.exceptAll(current).unionAll(current.exceptAll(new)).isEmpty()


CONSTRAINT_PROPERTY = "delta.constraints."  # a CHECK constraint's table property prefix


def check_constraints(spec: TableSpec) -> dict[str, str]:
    """The table's CHECK constraints: each ``expect_or_fail`` rule's name and SQL expression."""
    return {rule.name: rule.expression for rule in spec.expectations if rule.action is Action.FAIL}


def add_check_constraints(lakehouse: Lakehouse, spec: TableSpec) -> list[str]:
    """Add the CHECK constraints the table lacks (``ALTER TABLE``, one each); the names added.

    After a write conflict (another writer changed the table's metadata) the table's constraints
    are read again, so a constraint that writer added is not added twice.
    """
    table = lakehouse.name(spec.dataset)
    added: list[str] = []

    def add_missing() -> None:
        properties = {
            row["key"]: row["value"]
            for row in lakehouse.spark.sql(f"SHOW TBLPROPERTIES {table}").collect()
        }
        for name, expression in check_constraints(spec).items():
            if properties.get(f"{CONSTRAINT_PROPERTY}{name}") is not None:
                continue
            lakehouse.spark.sql(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({expression})")
            added.append(name)

    retry_on_conflict(add_missing, spec.dataset)
    return added


def _require_usd_rates(orders: DataFrame, fx_rates: DataFrame, dataset: str) -> None:
    """Every order must convert to USD: a missing rate would silently lose revenue."""
    unconverted = unconverted_orders(orders, fx_rates)
    examples = unconverted.select("order_id", "currency", "order_ts").limit(EXAMPLES).collect()
    if examples:
        shown = ", ".join(f"{r['order_id']} ({r['currency']}, {r['order_ts']})" for r in examples)
        raise ExpectationFailed(
            f"{dataset}: every_order_has_usd_rate failed: expected a USD rate on or before each "
            f"order's date in silver.fx_rates, found none for {unconverted.count()} order(s), "
            f"e.g. {shown}"
        )


def check_integrity(
    rows: DataFrame, spec: TableSpec, silver: Mapping[str, DataFrame], salt: str
) -> tuple[int, int]:
    """Primary key, foreign key (``build.reference``) and grain of the new gold ``rows``.

    Raises ``ExpectationFailed`` naming the check and a few offending keys; else returns the
    grain's conservation counts (input rows, table rows). One Spark job when the checks pass.
    """
    counts = _integrity_counts(rows, spec, silver, salt)
    _require_unique_keys(rows, spec, counts)
    if spec.build.reference is not None:
        _require_references(rows, spec, silver[spec.build.reference.table], salt, counts)
    return _grain_counts(spec, counts, silver)


def _referenced_keys(reference: Reference, salt: str) -> Column:
    """The referenced table's key as the gold column holds it: hashed with the salt, or as is."""
    key = sf.col(reference.column)
    return hash_id(key, salt) if reference.hashed else key


def _integrity_counts(
    rows: DataFrame, spec: TableSpec, silver: Mapping[str, DataFrame], salt: str
) -> dict[str, int]:
    """What the key, reference and grain checks need, in one job over the new gold rows.

    ``rows``: the table's rows; ``keys``: distinct key tuples (NULL keys group together, as in
    ``duplicate_keys``); with ``grain.sums``, that column summed. With a ``build.reference`` the
    rows are outer-joined to the referenced table's keys, which also gives ``referenced`` (the
    referenced table's rows) and ``missing`` (rows whose column is not one of its keys).
    """
    key = sf.struct(*[sf.col(key) for key in spec.keys])
    reference, grain = spec.build.reference, spec.build.grain
    sums = [sf.coalesce(sf.sum(grain.sums), sf.lit(0)).alias(grain.sums)] if grain.sums else []
    if reference is None:
        return _first_row_as_ints(rows.agg(
            sf.count(sf.lit(1)).alias("rows"), sf.count_distinct(key).alias("keys"), *sums
        ))
    gold = rows.select(*spec.keys, *([grain.sums] if grain.sums else []),
                       sf.col(reference.column).alias("_gold_ref"), sf.lit(True).alias("_in_gold"))
    referenced = silver[reference.table].select(
        _referenced_keys(reference, salt).alias("_ref_key"),
        sf.lit(True).alias("_in_ref"),
    )
    joined = gold.join(referenced, gold["_gold_ref"] == referenced["_ref_key"], "full_outer")
    in_gold, in_ref = sf.col("_in_gold").isNotNull(), sf.col("_in_ref").isNotNull()
    return _first_row_as_ints(joined.agg(
        sf.count_if(in_gold).alias("rows"),
        sf.count_distinct(sf.when(in_gold, key)).alias("keys"),
        sf.count_if(in_ref).alias("referenced"),
        sf.count_if(in_gold & ~in_ref).alias("missing"),
        *sums,
    ))


def _first_row_as_ints(aggregated: DataFrame) -> dict[str, int]:
    """The one row of a global aggregation, as ``{column: int}``."""
    row = aggregated.first()
    return {name: int(value) for name, value in (row.asDict() if row else {}).items()}


def _require_unique_keys(gold: DataFrame, spec: TableSpec, counts: Mapping[str, int]) -> None:
    """Primary key: one row per key (examples fetched only when ``counts`` show duplicates)."""
    if counts["keys"] == counts["rows"]:
        return
    duplicates = duplicate_keys(gold, spec.keys).limit(EXAMPLES).collect()
    shown = ", ".join(str(tuple(row[k] for k in spec.keys)) for row in duplicates)
    raise ExpectationFailed(
        f"{spec.dataset}: primary_key_unique failed: expected one row per "
        f"{', '.join(spec.keys)}, found {counts['rows'] - counts['keys']} duplicate row(s), "
        f"such as {shown}"
    )


def _require_references(
    gold: DataFrame, spec: TableSpec, table: DataFrame, salt: str, counts: Mapping[str, int]
) -> None:
    """Foreign key: every gold row's column is a key of the referenced table (hashed when the
    reference says so)."""
    reference = spec.build.reference
    if reference is None or not counts["missing"]:
        return
    keys = table.select(_referenced_keys(reference, salt).alias(reference.column))
    missing = missing_references(gold, reference.column, keys, reference.column)
    examples = missing.select(reference.column).limit(EXAMPLES).collect()
    hashed = "to hash" if reference.hashed else "to be"
    raise ExpectationFailed(
        f"{spec.dataset}: {reference.name} failed: expected every {reference.column} "
        f"{hashed} a {reference.table} {reference.column}, found {counts['missing']} that do "
        "not, e.g. " + ", ".join(str(row[reference.column]) for row in examples)
    )


def _grain_counts(
    spec: TableSpec, counts: Mapping[str, int], silver: Mapping[str, DataFrame]
) -> tuple[int, int]:
    """Conservation on the grain: every input row accounted for in the table's rows.

    ``rows_per``: one table row per row of that table (fact_customer_360: per customer).
    ``sums``/``of``: the column adds up to that table's rows (orders_daily: its ``orders`` add
    up to the silver orders, each counted on exactly one (order_date, currency) row).
    """
    grain, reference = spec.build.grain, spec.build.reference
    if grain.sums is not None and grain.of is not None:
        return silver[grain.of].count(), counts[grain.sums]
    if grain.rows_per is None:
        raise ConfigError(f"{spec.dataset}: build.grain: expected rows_per, or sums and of")
    if reference is not None and reference.table == grain.rows_per:
        return counts["referenced"], counts["rows"]  # counted by the reference check's join
    return silver[grain.rows_per].count(), counts["rows"]
