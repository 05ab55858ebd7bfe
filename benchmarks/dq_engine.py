"""The expectation engine against Great Expectations, and the DQ share of each pipeline step.

At ``--scale 1.0`` (5M behavior events, 1M Snowflake + 300k Kafka orders, 100k customers, every
table with 1-2 % dirt per rule; see ``benchmarks/data.py``), in one local ``local[2]`` session:

1. Engine vs GE, same rules, same table. For ``silver.fact_events`` and ``silver.fact_orders`` the
   frame the silver step checks (spec transformations + the ``customer_exists`` lookup against
   ``silver.dim_customer``) is materialised to Delta once; on it, ``check_expectations`` (every
   count in one aggregation) and a GE 1.24 suite with one expectation per quarantine rule (native
   where GE has one, else ``UnexpectedRowsExpectation`` with the rule's SQL; ``result_format``
   SUMMARY, GE's default) are timed after a warm-up, interleaved, best of ``--repeat``. Both must
   report the same failed count per rule, or the run stops: GE skips NULLs in column-map
   expectations, so for rules where NULL fails GE's ``missing_count`` is added.
2. DQ share per step. Silver (``update_silver`` of the three tables, a full refresh) and gold
   (``build_gold`` of both tables) are timed whole and against the same step without DQ (read,
   transform, dedupe, write; for gold also the unchanged-rows comparison that skips a write; no
   lookups, checks, quarantine, event log or conservation counts):
   the difference is what DQ costs, computed inputs being shared as the step shares them. Bronze
   (``load_bronze`` of the behavior load) checks inside its load, so its DQ parts (manifest
   checksums, contract profile, drift log) are timed alone on the same load, over its conformed
   lines kept as the step keeps them (built untimed: the writes need them too).

Wall clock (``time.perf_counter``), nothing asserted about times. Usage: ``make bench`` or
``python -m benchmarks.dq_engine --scale 0.01``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlglot
from pyspark.sql import DataFrame
from pyspark.sql import functions as sf
from sqlglot import exp

from benchmarks.data import PROC_DATE, Sizes, land_behavior_load, write_bronze_tables
from benchmarks.scratch import scratch
from medallion.lakehouse.contracts import load_contract
from medallion.lakehouse.contracts.conform import (
    LoadProfile,
    check_contract,
    conform_lines,
    pack_lines,
    parse_json_lines,
    profile_conformed,
    read_profile,
    unpack_lines,
)
from medallion.lakehouse.pipelines import bronze as bronze_step
from medallion.lakehouse.pipelines import gold as gold_step
from medallion.lakehouse.pipelines import silver as silver_step
from medallion.lakehouse.quality.engine import add_lookups, check_expectations
from medallion.lakehouse.quality.spec import Action, Expectation, TableSpec, spec_for
from medallion.lakehouse.raw.landing import load_dir, read_manifest
from medallion.lakehouse.spark import build_local_session, computed_once
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from medallion.lakehouse.transforms.bronze import unknown_columns_from_conformed
from medallion.lakehouse.transforms.gold.customer_360 import build_customer_360
from medallion.lakehouse.transforms.gold.orders_daily import build_orders_daily
from medallion.lakehouse.transforms.silver.dedupe import DROP_RULE_COLUMN

CHECKED_TABLES = ("silver.fact_events", "silver.fact_orders")
SILVER_STEPS = ("silver.dim_customer", "silver.fact_events", "silver.fact_orders")
GOLD_STEPS = ("gold.fact_customer_360", "gold.orders_daily")
RUN_ID = "bench"
SALT = "bench-salt"
T = TypeVar("T")


class CountMismatch(RuntimeError):
    """The engine and GE disagree on a rule's failed count: they did not do the same work."""


@dataclass(frozen=True)
class Timed:
    """Best and every wall-clock time of a repeated measurement, and the last run's result."""

    best: float
    runs: tuple[float, ...]
    result: Any = None


def timed(action: Callable[[], T], repeat: int, *, warm_up: bool = False) -> Timed:
    """Run ``action`` ``repeat`` times (after one untimed run when ``warm_up``); best time wins."""
    if warm_up:
        action()
    runs, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        runs.append(time.perf_counter() - started)
    return Timed(min(runs), tuple(runs), result)


# --- the same rules as a GE suite ------------------------------------------------------------


@dataclass(frozen=True)
class GERule:
    """One spec rule as a GE expectation, and how GE's counts map onto the engine's."""

    name: str
    expectation: Any
    native: bool
    # GE column-map expectations skip NULLs (reported as missing_count); the engine fails a row
    # whose predicate is NULL, so for those rules GE's failed count is unexpected + missing.
    nulls_fail: bool


def to_ge_rule(rule: Expectation) -> GERule:
    """The native GE expectation for the rule's predicate shape, else its SQL as unexpected rows."""
    import great_expectations.expectations as gxe

    parsed = sqlglot.parse_one(rule.expression, read="spark")
    column = _column_name(parsed)
    if isinstance(parsed, exp.Not) and isinstance(parsed.this, exp.Is):
        target = _column_name(parsed.this.this)
        if target and isinstance(parsed.this.expression, exp.Null):
            return GERule(rule.name, gxe.ExpectColumnValuesToNotBeNull(column=target), True, False)
    if isinstance(parsed, exp.RegexpLike):
        target = _column_name(parsed.this)
        if target and isinstance(parsed.expression, exp.Literal):
            regex = parsed.expression.this
            expectation = gxe.ExpectColumnValuesToMatchRegex(column=target, regex=regex)
            return GERule(rule.name, expectation, True, True)
    if isinstance(parsed, exp.In):
        target = _column_name(parsed.this)
        values = parsed.expressions
        if target and values and all(isinstance(v, exp.Literal) for v in values):
            value_set = [value.this for value in values]
            expectation = gxe.ExpectColumnValuesToBeInSet(column=target, value_set=value_set)
            return GERule(rule.name, expectation, True, True)
    if column:  # a boolean column (a lookup flag): valid when True
        expectation = gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True])
        return GERule(rule.name, expectation, True, True)
    if (
        isinstance(parsed, exp.Coalesce)
        and isinstance(parsed.this, exp.GTE)
        and [str(e) for e in parsed.expressions] == ["TRUE"]
        and _column_name(parsed.this.this)
        and isinstance(parsed.this.expression, exp.Literal)
    ):
        expectation = gxe.ExpectColumnValuesToBeBetween(
            column=_column_name(parsed.this.this), min_value=float(parsed.this.expression.this)
        )
        return GERule(rule.name, expectation, True, False)
    # GE fills {batch} with str.format: the rule's own braces (a regex {16}) are doubled.
    predicate = rule.expression.replace("{", "{{").replace("}", "}}")
    query = f"SELECT * FROM {{batch}} WHERE NOT coalesce(({predicate}), false)"
    return GERule(
        rule.name, gxe.UnexpectedRowsExpectation(unexpected_rows_query=query), False, False
    )


def _column_name(node: exp.Expression) -> str | None:
    """The name when ``node`` is a bare column reference."""
    return node.name if isinstance(node, exp.Column) else None


@dataclass
class GESuiteRunner:
    """A GE suite for a set of rules, validated against one DataFrame as a whole-frame batch."""

    rules: Sequence[GERule]
    frame: DataFrame
    name: str
    _batch_definition: Any = field(init=False, default=None)
    _suite: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_spark(name=f"bench_{self.name}", persist=False)
        asset = source.add_dataframe_asset(name=self.name)
        self._batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        self._suite = gx.ExpectationSuite(name=f"{self.name}_suite")
        for rule in self.rules:
            rule.expectation.description = rule.name
            self._suite.add_expectation(rule.expectation)

    def validate(self) -> dict[str, int]:
        """Validate the suite (SUMMARY results); the failed count per rule, engine semantics."""
        batch = self._batch_definition.get_batch(batch_parameters={"dataframe": self.frame})
        results = batch.validate(self._suite, result_format="SUMMARY").results
        by_name = {rule.name: rule for rule in self.rules}
        failed = {}
        for outcome in results:
            if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                raise CountMismatch(f"GE could not evaluate a rule: {outcome.exception_info}")
            rule = by_name[str(outcome.expectation_config.description)]
            details = outcome.result or {}
            if rule.native:
                count = int(details.get("unexpected_count") or 0)
                if rule.nulls_fail:
                    count += int(details.get("missing_count") or 0)
            else:
                count = int(details["observed_value"])
            failed[rule.name] = count
        return failed


def quarantine_rules(spec: TableSpec) -> tuple[Expectation, ...]:
    """The rules the benchmark compares: the spec's quarantine rules."""
    return spec.expectations_for(Action.QUARANTINE)


def checked_frame(lakehouse: Lakehouse, dataset: str) -> DataFrame:
    """What ``update_silver`` hands to the engine: prepared, transformed, lookups added."""
    table = silver_step.silver_table(dataset)
    spec = table.spec
    bronze = {source: lakehouse.read(source) for source in spec.sources}
    prepared = spec.apply_transformations(table.prepare(bronze))
    lookup_tables = {lookup.table: lakehouse.read(lookup.table) for lookup in spec.lookups}
    return add_lookups(prepared, spec.lookups, lookup_tables)


def materialised(lakehouse: Lakehouse, frame: DataFrame, name: str) -> DataFrame:
    """``frame`` written once as a Delta table and read back: every run reads the same files."""
    path = lakehouse.storage_root / "_bench" / name
    frame.write.format("delta").mode("overwrite").save(str(path))
    return lakehouse.spark.read.format("delta").load(str(path))


@dataclass(frozen=True)
class EngineVsGE:
    """One table's comparison: rows, rules (native GE ones), and the two timings."""

    dataset: str
    rows: int
    rules: int
    native: int
    failed: Mapping[str, int]
    engine: Timed
    ge: Timed
    floor: Timed
    predicates: Timed


def compare_engine_with_ge(lakehouse: Lakehouse, dataset: str, repeat: int) -> EngineVsGE:
    """Time our engine and GE on the same materialised frame and rules; counts must agree."""
    spec = spec_for(dataset)
    rules = quarantine_rules(spec)
    frame = materialised(lakehouse, checked_frame(lakehouse, dataset), dataset.replace(".", "_"))
    ge_rules = [to_ge_rule(rule) for rule in rules]
    runner = GESuiteRunner(ge_rules, frame, dataset.replace(".", "_"))

    def run_engine() -> dict[str, int]:
        checked = check_expectations(frame, rules, dataset=dataset, run_id=RUN_ID)
        return {item.name: item.failed_records for item in checked.metrics.expectations}

    read = sorted(rule_columns(rules, frame.columns))

    def scan() -> None:
        """The floor: read the rules' columns once and do nothing with them."""
        frame.select(*read).write.format("noop").mode("overwrite").save()

    def predicates() -> None:
        """The floor of any engine that evaluates these rules: each predicate once per row
        (regular expressions included), nothing counted, nothing kept."""
        outcomes = [sf.coalesce(sf.expr(rule.expression), sf.lit(False)) for rule in rules]
        frame.select(*outcomes).write.format("noop").mode("overwrite").save()

    ours = run_engine()  # warm-ups, then interleaved runs so both see the same machine load
    theirs = runner.validate()
    if ours != theirs:
        differing = {
            name: (ours.get(name), theirs.get(name))
            for name in sorted({*ours, *theirs})
            if ours.get(name) != theirs.get(name)
        }
        raise CountMismatch(
            f"{dataset}: expected the engine and GE to fail the same rows per rule, found "
            f"(engine, GE) = {differing}"
        )
    scan()
    engine_runs: list[float] = []
    ge_runs: list[float] = []
    floor_runs: list[float] = []
    predicate_runs: list[float] = []
    for _ in range(repeat):
        floor_runs.append(timed(scan, 1).best)
        predicate_runs.append(timed(predicates, 1).best)
        engine_runs.append(timed(run_engine, 1).best)
        ge_runs.append(timed(runner.validate, 1).best)
    return EngineVsGE(
        dataset=dataset,
        rows=frame.count(),
        rules=len(rules),
        native=sum(rule.native for rule in ge_rules),
        failed=ours,
        engine=Timed(min(engine_runs), tuple(engine_runs)),
        ge=Timed(min(ge_runs), tuple(ge_runs)),
        floor=Timed(min(floor_runs), tuple(floor_runs)),
        predicates=Timed(min(predicate_runs), tuple(predicate_runs)),
    )


def rule_columns(rules: Sequence[Expectation], columns: Sequence[str]) -> set[str]:
    """The frame's columns the rules' predicates read."""
    named = {
        column.name
        for rule in rules
        for column in sqlglot.parse_one(rule.expression, read="spark").find_all(exp.Column)
    }
    return {name for name in columns if name in named}


# --- DQ share per step -----------------------------------------------------------------------


@dataclass(frozen=True)
class StepShare:
    """A step's wall time and how much of it is data quality.

    Silver and gold: ``dq_seconds`` is the step minus the same step without DQ (its reads,
    transformations, dedupe and write, none of its lookups, checks, quarantine, logs or
    conservation counts), both timed whole. Bronze: the sum of its DQ parts, each timed alone
    (``parts``), as its checks run inside the load.
    """

    step: str
    rows_in: int
    step_seconds: float
    dq_seconds: float
    how: str
    parts: Mapping[str, float] = field(default_factory=dict)


def _best_parts(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per part, the best time over the runs."""
    return {name: min(run[name] for run in runs) for name in runs[0]}


def _clock(parts: dict[str, float], name: str, action: Callable[[], T]) -> T:
    """Run ``action``, adding its wall time to ``parts[name]``."""
    started = time.perf_counter()
    result = action()
    parts[name] = parts.get(name, 0.0) + time.perf_counter() - started
    return result




def measure_bronze(raw_source: Path, work: Path, repeat: int) -> StepShare:
    """``load_bronze`` of the behavior load into a fresh root per run, then its DQ parts alone.

    A fresh root per run measures a first load of the day (a re-run of a day already loaded skips
    the write). The raw files are hard links, so every root reads the same bytes.
    """
    entry = bronze_step.bronze_table("customer_behavior")
    step_runs, part_runs = [], []
    for index in range(repeat):
        root = work / f"bronze_run_{index}"
        shutil.copytree(raw_source, root / "raw", copy_function=os.link)
        lakehouse = Lakehouse.open(build_local_session(StorageRoot(root)), StorageRoot(root))
        started = time.perf_counter()
        result = bronze_step.load_bronze(lakehouse, entry.name, PROC_DATE, run_id=RUN_ID)
        step_runs.append(time.perf_counter() - started)
        part_runs.append(_bronze_dq_parts(lakehouse, entry))
    best = _best_parts(part_runs)
    return StepShare(
        f"bronze.{entry.name}",
        result.rows_in,
        min(step_runs),
        sum(best.values()),
        "DQ parts timed alone",
        best,
    )


def _bronze_dq_parts(lakehouse: Lakehouse, entry: bronze_step.BronzeTable) -> dict[str, float]:
    """One run of what ``load_bronze`` checks, on the load it just wrote: seconds per part."""
    parts: dict[str, float] = {}
    raw = load_dir(lakehouse.raw_root, entry.raw_source, entry.raw_entity, PROC_DATE)
    manifest = _clock(parts, "manifest checksums", lambda: read_manifest(raw))
    contract = load_contract("bronze", entry.contract_entity)

    lines = bronze_step.read_raw_lines(lakehouse.spark, manifest, lakehouse.storage_root)
    packed = pack_lines(conform_lines(parse_json_lines(lines), contract), contract)
    with computed_once(packed) as kept:
        # Built first and not timed: the step's writes need the conformed lines as much as
        # its checks do. The checks are what the step does with them besides writing.
        kept.count()
        conformed = unpack_lines(kept)

        def profile() -> LoadProfile:
            row = profile_conformed(conformed, contract).collect()[0]
            found = read_profile(row, contract)
            check_contract(contract, found, "bench")
            bronze_step.check_row_counts(entry.table, manifest, found.records, found.bad_lines)
            return found

        load_profile = _clock(parts, "contract profile", profile)
        # The reconciliation after writing needs no pass of its own: the rows are counted while
        # they are written (DataFrame.observe), so it is not timed here.
        unknown = unknown_columns_from_conformed(conformed, contract, proc_date=PROC_DATE,
                                                 run_id=RUN_ID)
        _clock(
            parts,
            "drift log",
            lambda: bronze_step._log_drift(
                unknown, contract, load_profile, PROC_DATE, lakehouse.storage_root, entry,
                "bench",
            ),
        )
    return parts


def measure_silver(lakehouse: Lakehouse, dataset: str, repeat: int) -> StepShare:
    """``update_silver`` (full refresh of the one-day bronze) against the same step without DQ."""
    step = timed(
        lambda: silver_step.update_silver(
            lakehouse, dataset, PROC_DATE, run_id=RUN_ID, full_refresh=True
        ),
        repeat,
    )
    bare = timed(lambda: _silver_without_dq(lakehouse, dataset), repeat)
    return StepShare(
        dataset, step.result.rows_in, step.best, step.best - bare.best, "step - step without DQ"
    )


def _silver_without_dq(lakehouse: Lakehouse, dataset: str) -> None:
    """What ``update_silver`` does on a full refresh, minus DQ: transform, dedupe, write."""
    table = silver_step.silver_table(dataset)
    spec = table.spec
    bronze = {source: lakehouse.read(source) for source in spec.sources}
    prepared = spec.apply_transformations(table.prepare(bronze))
    kept = (
        table.mark_versions(prepared)
        .where(sf.col(DROP_RULE_COLUMN).isNull())
        .select(*table.columns)
    )
    lakehouse.write(kept, f"bench.{dataset.replace('.', '_')}_without_dq", mode="overwrite")


def gold_frame(lakehouse: Lakehouse, dataset: str) -> tuple[DataFrame, dict[str, DataFrame]]:
    """The lazy gold frame ``build_gold`` checks and writes, and its silver inputs."""
    spec = spec_for(dataset)
    silver = {source: lakehouse.read(source) for source in spec.sources}
    if dataset == "gold.fact_customer_360":
        frame = build_customer_360(
            silver["silver.dim_customer"],
            silver["silver.fact_orders"],
            silver["silver.fact_events"],
            silver["silver.fx_rates"],
            salt=SALT,
        )
    else:
        frame = build_orders_daily(silver["silver.fact_orders"], silver["silver.fx_rates"])
    return frame, silver


def measure_gold(lakehouse: Lakehouse, dataset: str, repeat: int) -> StepShare:
    """``build_gold`` against the same step without DQ: build the frame and write it."""
    step = timed(lambda: gold_step.build_gold(lakehouse, dataset, run_id=RUN_ID, salt=SALT), repeat)

    def without_dq() -> None:
        # As build_gold, an unchanged rebuild writes nothing: that comparison is not DQ.
        frame, _ = gold_frame(lakehouse, dataset)
        table = f"bench.{dataset.replace('.', '_')}_without_dq"
        with computed_once(frame) as rows:
            if not (lakehouse.exists(table) and gold_step.same_rows(rows, lakehouse.read(table))):
                lakehouse.write(rows, table, mode="overwrite")

    bare = timed(without_dq, repeat)
    return StepShare(
        dataset, step.result.rows_in, step.best, step.best - bare.best, "step - step without DQ"
    )


# --- report ----------------------------------------------------------------------------------


def print_report(
    sizes: Sizes,
    generate_seconds: float,
    comparisons: Sequence[EngineVsGE],
    shares: Sequence[StepShare],
    repeat: int,
) -> None:
    """The two tables, plain text."""
    print(
        f"\nDQ benchmark: {sizes.events:,} events, {sizes.snowflake_orders:,} + "
        f"{sizes.kafka_orders:,} orders, {sizes.customers:,} customers "
        f"(generated in {generate_seconds:.0f} s); best of {repeat}, wall seconds"
    )
    print(
        "\nexpectation engine vs Great Expectations 1.24 (same quarantine rules, same Delta table)"
    )
    print(
        f"  {'table':<22}{'rows':>11}{'rules':>6}{'scan s':>8}{'rules s':>9}{'ours s':>8}"
        f"{'GE s':>7}{'ours/scan':>10}{'ours/rules':>11}{'GE/ours':>8}{'GE/scan':>8}"
    )
    for item in comparisons:
        engine = item.engine.best
        print(
            f"  {item.dataset:<22}{item.rows:>11,}{item.rules:>6}{item.floor.best:>8.2f}"
            f"{item.predicates.best:>9.2f}{engine:>8.2f}{item.ge.best:>7.2f}"
            f"{engine / item.floor.best:>9.2f}x{engine / item.predicates.best:>10.2f}x"
            f"{item.ge.best / engine:>7.1f}x{item.ge.best / item.floor.best:>7.1f}x"
        )
    print(
        "  scan: the rules' columns read once and discarded (a noop write), the floor of any\n"
        "  engine that reads the table; GE/scan bounds how much faster than GE any such engine\n"
        "  can be. rules: every rule's predicate evaluated once per row and discarded, the floor\n"
        "  of any engine that checks these rules; ours/rules is the engine's own cost (counting,\n"
        "  outcomes). GE native expectations: "
        + ", ".join(f"{item.dataset} {item.native} of {item.rules}" for item in comparisons)
    )
    for item in comparisons:
        failed = ", ".join(f"{name} {count:,}" for name, count in item.failed.items())
        print(f"  {item.dataset} failed rows per rule (equal in both): {failed}")

    print("\nDQ share of each step (checks, quarantine, DQ event log, conservation counts)")
    print(f"  {'step':<28}{'rows in':>11}{'step s':>9}{'DQ s':>8}{'share':>8}  measured as")
    for share in shares:
        print(
            f"  {share.step:<28}{share.rows_in:>11,}{share.step_seconds:>9.2f}"
            f"{share.dq_seconds:>8.2f}{share.dq_seconds / share.step_seconds:>8.0%}  {share.how}"
        )
    for share in shares:
        if share.parts:
            parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in share.parts.items())
            print(f"  {share.step}: {parts}")
    print(
        "\n  Indicative only: one run on a shared 2-core machine; each time the best of the runs."
    )


def main() -> None:
    """Generate the tables, compare engine and GE, measure each step's DQ share, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="1.0 = 5M events, 1M + 300k orders, 100k customers"
    )
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per measurement")
    parser.add_argument("--keep", action="store_true", help="keep the temporary storage root")
    parser.add_argument(
        "--shuffle-partitions",
        type=int,
        default=None,
        help="spark.sql.shuffle.partitions (default: build_local_session's 4)",
    )
    args = parser.parse_args()
    # Lineage is not DQ, and the steps would emit it but the bare variants not: off for both
    # (its own overhead is benchmarks.observability_overhead's).
    os.environ["MEDALLION_LINEAGE"] = "off"
    if args.shuffle_partitions:
        os.environ["MEDALLION_SHUFFLE_PARTITIONS"] = str(args.shuffle_partitions)
    sizes = Sizes.at(args.scale)
    with scratch("medallion-dq-bench-", keep=args.keep) as work:
        root = work / "lakehouse"
        lakehouse = Lakehouse.open(build_local_session(StorageRoot(root)), StorageRoot(root))
        started = time.perf_counter()
        write_bronze_tables(lakehouse, sizes)
        raw_root = work / "raw_load"
        land_behavior_load(Lakehouse.open(lakehouse.spark, StorageRoot(raw_root)), sizes)
        generate_seconds = time.perf_counter() - started
        print(f"generated the tables in {generate_seconds:.0f} s under {work}", flush=True)

        # dim_customer is the lookup table of both facts: built first, as build_analytics does
        shares = [measure_silver(lakehouse, "silver.dim_customer", args.repeat)]
        comparisons = []
        for dataset in CHECKED_TABLES:
            comparisons.append(compare_engine_with_ge(lakehouse, dataset, args.repeat))
            print(f"compared engine and GE on {dataset}", flush=True)
        shares += [measure_silver(lakehouse, dataset, args.repeat) for dataset in SILVER_STEPS[1:]]
        shares += [measure_gold(lakehouse, dataset, args.repeat) for dataset in GOLD_STEPS]
        print("measured the silver and gold steps", flush=True)
        # Last: its roots re-point the bronze table names of the session's catalog.
        shares.insert(0, measure_bronze(raw_root / "raw", work, args.repeat))
        print_report(sizes, generate_seconds, comparisons, shares, args.repeat)


if __name__ == "__main__":
    main()
