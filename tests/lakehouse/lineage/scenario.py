"""A small pipeline's lineage events, written as the steps write them: raw → bronze → silver → gold.

Two jobs a layer. What each job's latest COMPLETE run says (the graph the tests expect):

    redshift://devstack/analytics.behavior → ingest.redshift_behavior → raw/redshift/behavior
    snowflake://devstack/ORDERS → ingest.snowflake_orders → raw/snowflake/orders
    raw/redshift/behavior → load_bronze.customer_behavior → bronze.customer_behavior (+ side tables)
    raw/snowflake/orders → load_bronze.orders → bronze.orders
    bronze.customer_behavior, bronze.orders → update_silver.customer_behavior
                                               → silver.customer_behavior
    bronze.orders → update_silver.fact_orders → silver.fact_orders, silver.fact_orders_quarantine
    silver.customer_behavior, silver.fact_orders → build_gold.fact_customer_360
                                                    → gold.fact_customer_360
    silver.fact_orders → build_gold.daily_sales → gold.daily_sales

and what it must not say:

- update_silver.fact_orders first ran reading bronze.orders_legacy too; its re-run (a newer
  COMPLETE) reads bronze.orders only.
- ingest.redshift_behavior's latest run landed load_dt=2026-11-03, load_bronze.customer_behavior's
  latest run (a backfill) read load_dt=2026-11-02: both are raw/redshift/behavior/load_dt=*.
- build_gold.fact_customer_360's first run had another column lineage (a legacy_score column).
- build_gold.fact_customer_360 then failed reading silver.returns too: a FAIL adds nothing.
- build_gold.churn only ever failed: gold.churn has no lineage.
- the file ends in half an event (a write still going on).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from openlineage.client.event_v2 import OutputDataset, RunState

from medallion.lakehouse.errors import ExpectationFailed
from medallion.lakehouse.lineage.columns import AGGREGATION, IDENTITY, TRANSFORMATION, SourceColumn
from medallion.lakehouse.lineage.events import (
    StepRun,
    bare_outputs,
    column_lineage_facet,
    failure_facets,
    run_event,
)
from medallion.lakehouse.lineage.steps import (
    DatasetRef,
    StepLineage,
    raw_load_ref,
    system_ref,
    table_ref,
)
from medallion.lakehouse.lineage.transport import LockedFileTransport, events_path
from medallion.lakehouse.storage import StorageRoot

START = datetime(2026, 11, 3, 6, 0, tzinfo=UTC)
BEHAVIOR = "redshift://devstack/analytics.behavior"
ORDERS = "snowflake://devstack/ORDERS"
RAW_BEHAVIOR = "raw/redshift/behavior/load_dt=*"
RAW_ORDERS = "raw/snowflake/orders/load_dt=*"
TRUNCATED = '{"eventTime": "2026-11-03T09:00:00+00:00", "eventType": "COMPL'
GOLD_COLUMNS: dict[str, tuple[SourceColumn, ...]] = {
    "customer_id": (SourceColumn("silver.fact_orders", "customer_id", IDENTITY),),
    "lifetime_value": (SourceColumn("silver.fact_orders", "order_amount", AGGREGATION),),
    "events_30d": (
        SourceColumn("silver.customer_behavior", "event_id", AGGREGATION),
        SourceColumn("silver.customer_behavior", "event_ts", TRANSFORMATION),
    ),
}

LEGACY_COLUMNS: dict[str, tuple[SourceColumn, ...]] = {
    "customer_id": (SourceColumn("silver.fact_orders", "customer_id", IDENTITY),),
    "legacy_score": (SourceColumn("silver.fact_orders", "score", TRANSFORMATION),),
}


class Events:
    """Writes one step's events to ``<root>/_lineage/events.jsonl``, minutes after ``START``."""

    def __init__(self, root: Path) -> None:
        self.root = StorageRoot(root)
        self.transport = LockedFileTransport(events_path(StorageRoot(root)))

    def table(self, name: str) -> DatasetRef:
        """A lakehouse table of this root."""
        return table_ref(self.root, name)

    def raw(self, source: str, entity: str, day: int) -> DatasetRef:
        """A raw load directory of November ``day``."""
        return raw_load_ref(self.root, source, entity, date(2026, 11, day))

    def run(
        self,
        job: str,
        minute: int,
        inputs: Sequence[DatasetRef],
        outputs: Sequence[DatasetRef],
        *,
        state: RunState = RunState.COMPLETE,
        columns: dict[str, tuple[SourceColumn, ...]] | None = None,
    ) -> None:
        """START at ``minute``, then ``state`` a minute later (gold's columns on COMPLETE)."""
        step = StepRun.start(
            StepLineage(job, self.root, tuple(inputs), tuple(outputs)), job_run=None
        )
        at = START + timedelta(minutes=minute)
        self.transport.emit(run_event(step, RunState.START, now=at))
        finished = at + timedelta(minutes=1)
        if state is RunState.FAIL:
            error = ExpectationFailed("gold.fact_customer_360: 1 row failed 'customer_id_set'")
            self.transport.emit(run_event(step, state, run_facets=failure_facets(error),
                                          now=finished))
            return
        described = [
            OutputDataset(namespace=ref.namespace, name=ref.name, facets={
                "columnLineage": column_lineage_facet(self.root, columns)
            }) if columns and index == 0 else bare_outputs([ref])[0]
            for index, ref in enumerate(outputs)
        ]
        self.transport.emit(run_event(step, state, outputs=described, now=finished))


def write_scenario(root: Path) -> Path:
    """The events above, under ``root``; the events file."""
    events = Events(root)
    behavior = system_ref("redshift", "", "analytics.behavior")
    orders = system_ref("snowflake", "", "ORDERS")
    table = events.table
    events.run("build_gold.fact_customer_360", -10, [table("silver.fact_orders")],
               [table("gold.fact_customer_360")], columns=LEGACY_COLUMNS)
    events.run("ingest.redshift_behavior", 0, [behavior], [events.raw("redshift", "behavior", 2)])
    events.run("ingest.redshift_behavior", 2, [behavior], [events.raw("redshift", "behavior", 3)])
    events.run("ingest.snowflake_orders", 4, [orders], [events.raw("snowflake", "orders", 3)])
    events.run("load_bronze.customer_behavior", 6, [events.raw("redshift", "behavior", 3)],
               [table("bronze.customer_behavior"), table("bronze.customer_behavior_quarantine")])
    events.run("load_bronze.customer_behavior", 8, [events.raw("redshift", "behavior", 2)],
               [table("bronze.customer_behavior"), table("bronze.customer_behavior_quarantine")])
    events.run("load_bronze.orders", 10, [events.raw("snowflake", "orders", 3)],
               [table("bronze.orders")])
    events.run("update_silver.fact_orders", 12,
               [table("bronze.orders"), table("bronze.orders_legacy")],
               [table("silver.fact_orders"), table("silver.fact_orders_quarantine")])
    events.run("update_silver.customer_behavior", 14,
               [table("bronze.customer_behavior"), table("bronze.orders")],
               [table("silver.customer_behavior")])
    events.run("update_silver.fact_orders", 16, [table("bronze.orders")],
               [table("silver.fact_orders"), table("silver.fact_orders_quarantine")])
    events.run("build_gold.fact_customer_360", 18,
               [table("silver.customer_behavior"), table("silver.fact_orders")],
               [table("gold.fact_customer_360")], columns=GOLD_COLUMNS)
    events.run("build_gold.daily_sales", 20, [table("silver.fact_orders")],
               [table("gold.daily_sales")])
    events.run("build_gold.fact_customer_360", 22,
               [table("silver.customer_behavior"), table("silver.fact_orders"),
                table("silver.returns")],
               [table("gold.fact_customer_360")], state=RunState.FAIL)
    events.run("build_gold.churn", 24, [table("silver.customer_behavior")],
               [table("gold.churn")], state=RunState.FAIL)
    path = events_path(StorageRoot(root))
    with path.open("a", encoding="utf-8") as file:
        file.write(TRUNCATED)
    return path
