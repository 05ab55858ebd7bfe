"""Backfill: reprocess one source entity's raw loads over a date range with today's contracts.

For each date that has a complete raw load, the entity's bronze partition is rebuilt from raw
(current contract), then the silver tables fed by it are updated for that date; gold is rebuilt
once at the end. Every step is idempotent (bronze replaces its partition, silver MERGEs with
latest-wins and replaces its quarantine partition, gold is recomputed), so a backfill over a range
that is already up to date changes nothing, and running it twice gives the same tables. Which
silver and gold tables a source feeds comes from their specs' ``sources``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.pipelines import StepResult
from medallion.lakehouse.pipelines.bronze import bronze_tables, load_bronze
from medallion.lakehouse.pipelines.gold import build_gold, gold_tables
from medallion.lakehouse.pipelines.silver import silver_tables, update_silver
from medallion.lakehouse.quality.spec import spec_for
from medallion.lakehouse.raw.landing import list_loads
from medallion.lakehouse.tables import Lakehouse

Progress = Callable[[date, str, StepResult | None], None]
"""Called after each step with the date, the step's target and its result (None: no raw load)."""


@dataclass
class BackfillResult:
    """What a backfill did: every step's result in order, and the dates without a raw load."""

    entity: str
    steps: list[tuple[date | None, StepResult]] = field(default_factory=list)
    missing: list[date] = field(default_factory=list)


def silver_tables_fed_by(bronze_table: str) -> list[str]:
    """The silver tables whose spec lists ``bronze_table`` as a source, in build order."""
    return [table.dataset for table in silver_tables() if bronze_table in table.spec.sources]


def gold_tables_fed_by(silver: list[str]) -> list[str]:
    """The gold tables whose spec lists one of ``silver`` as a source, in build order."""
    return [name for name in gold_tables() if set(silver) & set(spec_for(name).sources)]


def dates_between(start: date, end: date) -> Iterator[date]:
    """Every date from ``start`` to ``end``, both included."""
    if end < start:
        raise ConfigError(f"backfill range: expected --from <= --to, found {start} > {end}")
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def backfill(
    lakehouse: Lakehouse,
    entity: str,
    start: date,
    end: date,
    *,
    run_id: str,
    salt: str,
    on_step: Progress | None = None,
) -> BackfillResult:
    """Reprocess ``entity`` (a bronze table name, e.g. ``customer_behavior``) from raw."""
    tables = bronze_tables()
    if entity not in tables:
        raise ConfigError(
            f"backfill: unknown entity {entity!r}; expected one of {', '.join(sorted(tables))}"
        )
    bronze = tables[entity]
    landed = set(list_loads(lakehouse.raw_root, bronze.raw_source, bronze.raw_entity))
    silver = silver_tables_fed_by(bronze.table)
    result = BackfillResult(entity)
    report = on_step or (lambda _day, _target, _result: None)
    for day in dates_between(start, end):
        if day not in landed:
            result.missing.append(day)
            report(day, bronze.table, None)
            continue
        step = load_bronze(lakehouse, bronze.table, day, run_id=run_id)
        result.steps.append((day, step))
        report(day, bronze.table, step)
        for dataset in silver:
            step = update_silver(lakehouse, dataset, day, run_id=run_id, job="backfill")
            result.steps.append((day, step))
            report(day, dataset, step)
    if result.steps:
        for dataset in gold_tables_fed_by(silver):
            step = build_gold(lakehouse, dataset, run_id=run_id, salt=salt, job="backfill")
            result.steps.append((None, step))
            report(end, dataset, step)
    return result
