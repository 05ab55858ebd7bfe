"""The DQ breaker: a Great Expectations suite per table of a layer, run between layers.

The suites are built from the same spec files the expectation engine runs, so there is one source
of truth for the rules: the breaker re-checks, on the tables as written, that every quarantine,
drop and fail rule holds, that keys are present and unique and that row counts are in bounds.
Warn rules are reported but never break. A critical failure raises ``ExpectationFailed`` and the
task fails, so every downstream task of the job is skipped (UPSTREAM_FAILED), as on Databricks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlglot
from pyspark.sql import DataFrame
from pyspark.sql import functions as sf
from sqlglot import exp

from medallion.errors import ExpectationFailed
from medallion.lakehouse import Lakehouse
from medallion.lineage import lineage_job
from medallion.quality.engine import Action
from medallion.quality.spec import TableSpec, load_specs

LOG = logging.getLogger(__name__)
METADATA_PREFIX = "_"
RESULT_FORMAT = "SUMMARY"  # GE's default: counts and a few unexpected values per check


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
    """One GE expectation of a suite, by the name reports use, and whether it is critical."""

    name: str
    expectation: Any
    critical: bool = True


def build_suite(
    spec: TableSpec, columns: Sequence[str], table_name: Callable[[str], str] = str
) -> list[SuiteItem]:
    """GE expectations for ``spec``'s table (each described by its name), critical or not.

    Rules that name a column the table does not have (a lookup such as ``customer_exists``, or a
    raw field only the input had) cannot be re-checked on the table; lookups are re-checked as
    referential-integrity queries instead, against ``table_name(lookup.table)`` (the name
    Spark SQL knows the table by: catalog-qualified on Databricks).
    """
    import great_expectations.expectations as gxe

    present = set(columns)
    items: list[SuiteItem] = []
    if spec.checks.min_rows is not None or spec.checks.max_rows is not None:
        items.append(
            SuiteItem(
                "row_count_in_bounds",
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
        for lookup in spec.lookups:
            on = " AND ".join(f"b.`{column}` = l.`{column}`" for column in lookup.on)
            reference = table_name(lookup.table)
            query = f"SELECT b.* FROM {{batch}} b LEFT ANTI JOIN {reference} l ON {on}"
            items.append(
                SuiteItem(lookup.name, gxe.UnexpectedRowsExpectation(unexpected_rows_query=query))
            )
    for rule in spec.expectations:
        if not _columns_of(rule.expression) <= present:
            continue
        # GE fills {batch} with str.format: braces of the rule's own (regex {3}) are doubled.
        predicate = rule.expression.replace("{", "{{").replace("}", "}}")
        query = f"SELECT * FROM {{batch}} WHERE NOT coalesce(({predicate}), false)"
        items.append(
            SuiteItem(
                rule.name,
                gxe.UnexpectedRowsExpectation(unexpected_rows_query=query),
                critical=rule.action is not Action.WARN,
            )
        )
    for item in items:
        item.expectation.description = item.name
    return items


@lineage_job
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
    """Every check of ``layer``'s GE suites, failed or not (the watchdog reports, not raises).

    One table at a time: GE's query expectations register the batch under a temp-view name of
    its own choosing, so two validations in one Spark session would read each other's rows.
    """
    specs = load_specs(layer)
    chosen = [specs[name] for name in (tables or sorted(specs))]
    checks: list[BreakerCheck] = []
    rows: dict[str, int] = {}
    frames: dict[str, DataFrame] = {}
    for spec in chosen:  # reads register tables in the catalog: one thread, before the rest
        if not lakehouse.exists(spec.dataset):
            checks.append(BreakerCheck(spec.dataset, "table_exists", True, False))
            continue
        frames[spec.dataset] = breaker_frame(lakehouse, spec, run_date)
        for lookup in spec.lookups:
            lakehouse.read(lookup.table)  # so the integrity query resolves the name
    for spec in chosen:
        if spec.dataset in frames:
            table_checks, table_rows = _validate_table(spec, frames[spec.dataset], lakehouse.name)
            checks.extend(table_checks)
            rows.update(table_rows)
    result = BreakerResult(layer=layer, checks=tuple(checks), rows=rows)
    LOG.info("DQ breaker %s: %s", layer, result.summary())
    return result


def _validate_table(
    spec: TableSpec, frame: DataFrame, table_name: Callable[[str], str]
) -> tuple[list[BreakerCheck], dict[str, int]]:
    """One table's GE suite on ``frame``: its checks, and its row count."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_spark(name=f"{spec.layer}_breaker", persist=False)
    items = {item.name: item for item in build_suite(spec, frame.columns, table_name)}
    suite = gx.ExpectationSuite(name=f"{spec.dataset}_suite")
    for item in items.values():
        suite.add_expectation(item.expectation)
    asset = source.add_dataframe_asset(name=spec.dataset.replace(".", "_"))
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
        batch_parameters={"dataframe": frame}
    )
    checks = []
    for outcome in batch.validate(suite, result_format=RESULT_FORMAT).results:  # type: ignore[call-overload]
        config = outcome.expectation_config
        item = items[str(config.description if config is not None else "")]
        checks.append(_check(spec.dataset, item, outcome))
    return checks, {spec.dataset: frame.count()}


def _check(table: str, item: SuiteItem, outcome: Any) -> BreakerCheck:
    """One GE result as a ``BreakerCheck``."""
    details = outcome.result or {}
    observed = details.get("observed_value")
    unexpected = details.get("unexpected_count")
    if unexpected is None and isinstance(observed, int) and item.name != "row_count_in_bounds":
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

