"""Every wrapped step has a lineage declaration; an elided plan is refused, not misread."""

from __future__ import annotations

import inspect

import pytest

from medallion.lineage.columns import PlanUnreadable, column_lineage_of_plan
from medallion.lineage.steps import STEPS
from medallion.pipelines import bronze, fx_rates, gold, ingest, publish, silver
from medallion.quality import breaker, watchdog


def test_the_wrapped_steps_are_exactly_the_declared_ones() -> None:
    wrapped = {
        name
        for module in (bronze, silver, gold, fx_rates, ingest, publish, breaker, watchdog)
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__ and hasattr(function, "__wrapped__")
    }

    assert wrapped == set(STEPS)


def test_a_plan_with_elided_fields_is_refused() -> None:
    plan = (
        "a: string, b: string\n"
        "Project [a#1, b#2]\n"
        "+- Relation spark_catalog.silver.wide[a#1,b#2,... 30 more fields] parquet"
    )

    with pytest.raises(PlanUnreadable, match=r"found '\.\.\. more fields'"):
        column_lineage_of_plan(plan)
