"""The DQ breaker: a Great Expectations suite per table of a layer, run between layers.

The suites are built from the same spec files the expectation engine runs, so there is one source
of truth for the rules: the breaker re-checks, on the tables as written, that every quarantine,
drop and fail rule holds, that keys are present and unique and that row counts are in bounds.
Warn rules are reported but never break. A critical failure raises ``ExpectationFailed`` and the
task fails, so every downstream task of the job is skipped (UPSTREAM_FAILED), as on Databricks.

How it checks, cheaply: each rule (a SQL predicate that describes a valid row) and each lookup
(referential integrity) becomes a flag column of the checked frame, TRUE on a valid row and NULL
on any other, and GE expects each flag column not to be null. GE bundles such column-map counts,
the keys' checks and the row count into a few aggregations over that frame (keys and flags only,
computed once and kept for them), instead of two Spark jobs per rule over the whole table. The
first validation asks for ``BOOLEAN_ONLY``; only a table with a failed check is validated again
with GE's ``SUMMARY`` result format, for the unexpected counts and sample values it reports.

Where the checked frame is small (a day's bronze partition, a demo-scale silver or gold table: at
most ``LOCAL_ROWS`` rows of keys and flags), it is fetched once, over Arrow, and the same suite
runs on GE's pandas engine: one Spark job per table instead of GE's several, and GE's metric
computations in-process. The expectations, and so the verdicts, are the same on either engine.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
import sqlglot
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from sqlglot import exp

from medallion.lakehouse.errors import ExpectationFailed
from medallion.lakehouse.lineage import lineage_job
from medallion.lakehouse.lineage.steps import StepLineage, tables_lineage
from medallion.lakehouse.quality.engine import add_lookups
from medallion.lakehouse.quality.spec import Action, TableSpec, load_specs
from medallion.lakehouse.spark import computed_once, with_job_tags
from medallion.lakehouse.tables import Lakehouse

LOG = logging.getLogger(__name__)
FLAG_PREFIX = "__breaker_"
QUICK_RESULT_FORMAT = "BOOLEAN_ONLY"  # success only: no unexpected-value samples to fetch
RESULT_FORMAT = "SUMMARY"  # GE's default: counts and a few unexpected values per check
ROW_COUNT_CHECK = "row_count_in_bounds"
VALIDATION_THREADS = 4  # tables validated at once
# Checked frames up to this many rows are validated on GE's pandas engine (keys and boolean flags:
# ~10 MB at this size); larger ones by GE on Spark.
LOCAL_ROWS = 200_000
_GE_SETUP = threading.Lock()


@dataclass(frozen=True)
class BreakerCheck:
    """One GE expectation's outcome on one table."""

    table: str
    name: str
    critical: bool
    success: bool
    unexpected: int | None = None
    observed: Any = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for task values and run summaries."""
        return {
            "table": self.table,
            "name": self.name,
            "critical": self.critical,
            "success": self.success,
            "unexpected": self.unexpected,
            "observed": self.observed,
        }


@dataclass(frozen=True)
class BreakerResult:
    """Every check of a layer's breaker run, and the rows each table had."""

    layer: str
    checks: tuple[BreakerCheck, ...]
    rows: Mapping[str, int] = field(default_factory=dict)
    # (table, rule) of the spec rules the table cannot be re-checked against: they name a
    # column only the pipeline step's input had (its step checked them there).
    not_rechecked: tuple[tuple[str, str], ...] = ()

    @property
    def critical_failures(self) -> tuple[BreakerCheck, ...]:
        """The failed checks that stop the job."""
        return tuple(check for check in self.checks if check.critical and not check.success)

    @property
    def passed(self) -> bool:
        """True when no critical check failed."""
        return not self.critical_failures

    def failure_message(self) -> str:
        """Which critical checks failed, on which table, with how many unexpected rows.

        One ``<table>: <check> failed`` line each: the runner's DQ-violation alert names them.
        """
        lines = [
            f"{check.table}: {check.name} failed"
            + (f" ({check.unexpected} unexpected rows)" if check.unexpected is not None else "")
            + (f" (observed {check.observed})" if check.observed is not None else "")
            for check in self.critical_failures
        ]
        return (
            f"DQ breaker ({self.layer}): {len(lines)} critical check(s) failed; downstream tasks "
            "must not run:\n  " + "\n  ".join(lines)
        )

    def summary(self) -> dict[str, Any]:
        """Counts for task values: checks run, passed, failed (critical / warning)."""
        failed = [check for check in self.checks if not check.success]
        return {
            "layer": self.layer,
            "checks": len(self.checks),
            "passed": len(self.checks) - len(failed),
            "critical_failed": len(self.critical_failures),
            "warnings": len(failed) - len(self.critical_failures),
            "rows": dict(self.rows),
        }


def breaker_frame(lakehouse: Lakehouse, spec: TableSpec, run_date: date | None) -> DataFrame:
    """The rows a layer's breaker checks: bronze the run's partition, silver and gold whole."""
    table = lakehouse.read(spec.dataset)
    if spec.layer == "bronze" and run_date is not None:
        return table.where(sf.col("_proc_date") == sf.lit(run_date))
    return table


@dataclass(frozen=True)
class SuiteItem:
    """One GE expectation of a suite: the name reports use, whether it is critical, and for a
    rule or lookup the flag column it checks (TRUE on a valid row, NULL otherwise)."""

    name: str
    expectation: Any
    critical: bool = True
    flag: Column | None = None


def flag_column(check: str) -> str:
    """The checked frame's column that flags the rows valid under ``check``."""
    return FLAG_PREFIX + re.sub(r"\W", "_", check)


def rules_not_on(spec: TableSpec, columns: Sequence[str]) -> list[str]:
    """The spec's rules that name a column the table does not have, which ``build_suite``
    leaves out."""
    present = set(columns)
    return [rule.name for rule in spec.expectations
            if not _columns_of(rule.expression) <= present]


def build_suite(spec: TableSpec, columns: Sequence[str]) -> list[SuiteItem]:
    """GE expectations for ``spec``'s table (each described by its name), critical or not.

    Rules that name a column the table does not have (a lookup such as ``customer_exists``, or a
    raw field only the input had) cannot be re-checked on the table; lookups are re-checked
    as referential integrity instead: the row's key must exist in the lookup's table.
    """
    import great_expectations.expectations as gxe

    present = set(columns)
    items: list[SuiteItem] = []
    if spec.checks.min_rows is not None or spec.checks.max_rows is not None:
        items.append(
            SuiteItem(
                ROW_COUNT_CHECK,
                gxe.ExpectTableRowCountToBeBetween(
                    min_value=spec.checks.min_rows, max_value=spec.checks.max_rows
                ),
            )
        )
    keys = [key for key in spec.keys if key in present]
    if spec.layer != "bronze":
        items += [
            SuiteItem(f"{key}_not_null", gxe.ExpectColumnValuesToNotBeNull(column=key))
            for key in keys
        ]
        if len(keys) == 1:
            items.append(
                SuiteItem(f"{keys[0]}_unique", gxe.ExpectColumnValuesToBeUnique(column=keys[0]))
            )
        elif keys:
            items.append(
                SuiteItem(
                    f"{'_'.join(keys)}_unique",
                    gxe.ExpectCompoundColumnsToBeUnique(column_list=keys),
                )
            )
        items += [
            _flag_item(lookup.name, sf.col(lookup.name), critical=True)
            for lookup in spec.lookups
        ]
    items += [
        _flag_item(rule.name, sf.expr(rule.expression), critical=rule.action is not Action.WARN)
        for rule in spec.expectations
        if _columns_of(rule.expression) <= present
    ]
    for item in items:
        item.expectation.description = item.name
    return items


def _flag_item(name: str, valid: Column, *, critical: bool) -> SuiteItem:
    """A rule or lookup as a not-null expectation on its flag column (NULL counts as invalid)."""
    import great_expectations.expectations as gxe

    flag = sf.when(sf.coalesce(valid, sf.lit(False)), sf.lit(True))
    return SuiteItem(
        name,
        gxe.ExpectColumnValuesToNotBeNull(column=flag_column(name)),
        critical=critical,
        flag=flag,
    )


def checked_frame(
    spec: TableSpec, frame: DataFrame, items: Sequence[SuiteItem],
    references: Mapping[str, DataFrame],
) -> DataFrame:
    """What the suite validates: the table's keys and one flag column per rule and lookup."""
    flagged = add_lookups(frame, spec.lookups, references) if spec.layer != "bronze" else frame
    keys = [key for key in spec.keys if key in frame.columns]
    flags = [item.flag.alias(flag_column(item.name)) for item in items if item.flag is not None]
    return flagged.select(*[sf.col(key) for key in keys], *flags)


def run_breaker_lineage(lakehouse: Lakehouse, layer: str, tables: Sequence[str] | None,
                        **_: object) -> StepLineage:
    """A layer's DQ breaker reads the layer's tables (and its lookups' tables), writes nothing."""
    specs = load_specs(layer)
    chosen = [specs[name] for name in (tables or sorted(specs))]
    return tables_lineage(
        f"dq_breaker.{layer}", lakehouse,
        inputs=[*(spec.dataset for spec in chosen),
                *(lookup.table for spec in chosen for lookup in spec.lookups)],
    )


@lineage_job(run_breaker_lineage)
def run_breaker(
    lakehouse: Lakehouse,
    layer: str,
    *,
    run_date: date | None = None,
    tables: Sequence[str] | None = None,
) -> BreakerResult:
    """Validate every table of ``layer`` with its GE suite; raise when a critical check fails."""
    result = validate_layer(lakehouse, layer, run_date=run_date, tables=tables)
    if not result.passed:
        raise ExpectationFailed(result.failure_message())
    return result


def validate_layer(
    lakehouse: Lakehouse,
    layer: str,
    *,
    run_date: date | None = None,
    tables: Sequence[str] | None = None,
) -> BreakerResult:
    """Every check of ``layer``'s GE suites, failed or not (the watchdog reports, not raises)."""
    specs = load_specs(layer)
    chosen = [specs[name] for name in (tables or sorted(specs))]
    present = [spec for spec in chosen if lakehouse.exists(spec.dataset)]
    with ExitStack() as kept:
        # Read first, in this thread (a read registers its table in the catalog); a lookup
        # table once for every suite that looks rows up in it.
        lookups = {
            table: kept.enter_context(computed_once(lakehouse.read(table),
                                                    keep=lakehouse.is_small(table)))
            for table in sorted({lookup.table for spec in present for lookup in spec.lookups})
        }
        inputs = {
            spec.dataset: (
                breaker_frame(lakehouse, spec, run_date),
                {lookup.table: lookups[lookup.table] for lookup in spec.lookups},
            )
            for spec in present
        }
        checks, rows, not_rechecked = _validate_tables(lakehouse, chosen, inputs)
    result = BreakerResult(layer=layer, checks=tuple(checks), rows=rows,
                           not_rechecked=tuple(not_rechecked))
    LOG.info("DQ breaker %s: %s", layer, result.summary())
    return result


def _validate_tables(
    lakehouse: Lakehouse,
    chosen: Sequence[TableSpec],
    inputs: Mapping[str, tuple[DataFrame, Mapping[str, DataFrame]]],
) -> tuple[list[BreakerCheck], dict[str, int], list[tuple[str, str]]]:
    """Each present table's suite on its frame and lookups (``inputs``); an absent one fails
    ``table_exists``. The checks, each table's rows, and the rules no suite could check."""
    # The tables' validations overlap: each is a few small Spark jobs and GE's own Python, so
    # one table's Python runs while another's jobs do (no temp views are shared between them).
    validate = with_job_tags(lakehouse.spark, validate_table)  # the task's label on their jobs
    with ThreadPoolExecutor(max_workers=VALIDATION_THREADS, thread_name_prefix="breaker") as pool:
        validated = {
            spec.dataset: pool.submit(validate, spec, *inputs[spec.dataset])
            for spec in chosen if spec.dataset in inputs
        }
        checks: list[BreakerCheck] = []
        rows: dict[str, int] = {}
        not_rechecked: list[tuple[str, str]] = []
        for spec in chosen:
            if spec.dataset not in validated:
                checks.append(BreakerCheck(spec.dataset, "table_exists", True, False))
                continue
            table_checks, rows[spec.dataset] = validated[spec.dataset].result()
            checks.extend(table_checks)
            columns = inputs[spec.dataset][0].columns
            not_rechecked += [(spec.dataset, name) for name in rules_not_on(spec, columns)]
    return checks, rows, not_rechecked


def validate_table(
    spec: TableSpec, frame: DataFrame, references: Mapping[str, DataFrame]
) -> tuple[list[BreakerCheck], int]:
    """One table's GE suite on ``frame``: its checks, and its row count.

    First with ``BOOLEAN_ONLY`` (one aggregation); a table with a failed check again with
    ``SUMMARY``, whose results then stand for every check of the table.
    """
    items = {item.name: item for item in build_suite(spec, frame.columns)}
    checked = checked_frame(spec, frame, list(items.values()), references)
    local = checked.limit(LOCAL_ROWS + 1).toPandas()
    if len(local) <= LOCAL_ROWS:
        return _validated(spec, local, items)
    with computed_once(checked) as kept:
        return _validated(spec, kept, items)


def _validated(
    spec: TableSpec, checked: DataFrame | pd.DataFrame, items: Mapping[str, SuiteItem]
) -> tuple[list[BreakerCheck], int]:
    """The suite's checks on ``checked`` (Spark or pandas), and the table's row count."""
    outcomes = _validate(spec, checked, items, QUICK_RESULT_FORMAT)
    if all(outcome.success for outcome in outcomes):
        checks = [_passed(spec.dataset, items[_name(outcome)]) for outcome in outcomes]
        return checks, _row_count(checked, outcomes)
    outcomes = _validate(spec, checked, items, RESULT_FORMAT)
    checks = [_check(spec.dataset, items[_name(outcome)], outcome) for outcome in outcomes]
    return checks, _row_count(checked, outcomes)


def _validate(
    spec: TableSpec,
    checked: DataFrame | pd.DataFrame,
    items: Mapping[str, SuiteItem],
    result_format: str,
) -> list[Any]:
    """GE's results of the suite on ``checked``, one per expectation."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    with _GE_SETUP:  # GE keeps its current context process-wide: set up one suite at a time
        context = gx.get_context(mode="ephemeral")  # ~20 ms once GE is imported
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        name = f"{spec.layer}_breaker"
        source = (
            context.data_sources.add_pandas(name=name)
            if isinstance(checked, pd.DataFrame)
            else context.data_sources.add_spark(name=name, persist=False)
        )
        asset = source.add_dataframe_asset(name=spec.dataset.replace(".", "_"))
        batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
            batch_parameters={"dataframe": checked}
        )
        suite = gx.ExpectationSuite(name=f"{spec.dataset}_suite")
        for item in items.values():
            suite.add_expectation(item.expectation.copy())  # a suite owns its expectations
    return list(batch.validate(suite, result_format=result_format).results)  # type: ignore[call-overload]


def _name(outcome: Any) -> str:
    config = outcome.expectation_config
    return str(config.description if config is not None else "")


def _row_count(checked: DataFrame | pd.DataFrame, outcomes: Sequence[Any]) -> int:
    """The table's rows: GE's observed row count when the suite has one, else a count."""
    for outcome in outcomes:
        observed = (outcome.result or {}).get("observed_value")
        if _name(outcome) == ROW_COUNT_CHECK and isinstance(observed, int):
            return observed
    return len(checked) if isinstance(checked, pd.DataFrame) else int(checked.count())


def _passed(table: str, item: SuiteItem) -> BreakerCheck:
    """A check that passed: no unexpected row (a row-count bound has none to report)."""
    unexpected = None if item.name == ROW_COUNT_CHECK else 0
    return BreakerCheck(table=table, name=item.name, critical=item.critical, success=True,
                        unexpected=unexpected)


def _check(table: str, item: SuiteItem, outcome: Any) -> BreakerCheck:
    """One GE result as a ``BreakerCheck``."""
    details = outcome.result or {}
    observed = details.get("observed_value")
    unexpected = details.get("unexpected_count")
    if unexpected is None and isinstance(observed, int) and item.name != ROW_COUNT_CHECK:
        unexpected = observed  # UnexpectedRowsExpectation reports its count as the observation
    return BreakerCheck(
        table=table,
        name=item.name,
        critical=item.critical,
        success=bool(outcome.success),
        unexpected=int(unexpected) if isinstance(unexpected, int | float) else None,
        observed=observed if isinstance(observed, int | float | str) else None,
    )


def _columns_of(expression: str) -> set[str]:
    """The column names a SQL predicate reads."""
    parsed = sqlglot.parse_one(expression, read="spark")
    return {column.name for column in parsed.find_all(exp.Column)}
