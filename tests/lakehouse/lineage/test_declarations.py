"""Every pipeline step is wrapped with its lineage declaration; an elided plan is refused."""

from __future__ import annotations

import inspect

import pytest

from medallion.lakehouse.lineage.columns import PlanUnreadable, column_lineage_of_plan
from medallion.lakehouse.pipelines import bronze, fx_rates, gold, ingest, publish, silver
from medallion.lakehouse.quality import breaker, watchdog

STEPS = {
    "load_bronze", "update_silver", "build_gold", "ingest_fx_rates", "ingest_snowflake_orders",
    "ingest_redshift_behavior", "ingest_crm_accounts", "ingest_kafka_orders", "ingest_fx",
    "publish_gold", "run_breaker", "run_watchdog",
}


def test_every_pipeline_step_is_wrapped_with_its_own_lineage_declaration() -> None:
    declared = {
        name: vars(function)["declare_lineage"]  # set by medallion.lakehouse.lineage.lineage_job
        for module in (bronze, silver, gold, fx_rates, ingest, publish, breaker, watchdog)
        for name, function in inspect.getmembers(module, inspect.isfunction)
        # Wrapped and public: a private helper may be wrapped too (a context manager).
        if function.__module__ == module.__name__ and hasattr(function, "__wrapped__")
        and not name.startswith("_")
    }

    assert set(declared) == STEPS
    assert all(callable(declare) for declare in declared.values())


def test_a_plan_with_elided_fields_is_refused() -> None:
    plan = (
        "a: string, b: string\n"
        "Project [a#1, b#2]\n"
        "+- Relation spark_catalog.silver.wide[a#1,b#2,... 30 more fields] parquet"
    )

    with pytest.raises(PlanUnreadable, match=r"found '\.\.\. more fields'"):
        column_lineage_of_plan(plan)
