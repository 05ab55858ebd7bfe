"""The DQ event log: one ``flow_progress`` row per checked dataset and run, as DLT's event log has.

Grain: one row per (run_id, job, task, dataset) check; key ``id`` (a UUID). The hourly watchdog
(``medallion.lakehouse.quality.watchdog``) appends its checks to the same log as ``watchdog_check``
events, one per (run, dataset, check); readers of the DLT metrics select
``event_type = 'flow_progress'``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from medallion.lakehouse.lineage.observe import observe_dq_metrics
from medallion.lakehouse.quality.engine import CheckedFrame, ExpectationsFailed, check_expectations
from medallion.lakehouse.quality.metrics import DQMetrics
from medallion.lakehouse.quality.run_mirror import record_dq_check
from medallion.lakehouse.spark import local_frame

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyspark.sql import DataFrame, SparkSession

    from medallion.lakehouse.quality.spec import TableSpec
    from medallion.lakehouse.tables import Lakehouse

DQ_EVENT_LOG = "ops.dq_event_log"
# A build appends one event per silver and gold table (7 commits), and Delta writes a checkpoint
# of a table's log every 10 commits by default, in the commit that reaches it: state
# reconstruction and a Parquet write in whichever task's append that was. `make bench`'s small
# day 3: gold.fact_customer_360's append took 1.8 s (7 Spark jobs) against 0.3 s (1 job) for
# the others, on the build's critical path. Every 100 commits moves that cost to one build in
# fourteen; a reader (the watchdog, the demo's report) replays at most 100 small commit files.
EVENT_LOG_PROPERTIES = {"delta.checkpointInterval": "100"}
EVENT_TYPE = "flow_progress"
DQ_EVENT_SCHEMA = StructType([
    StructField("id", StringType()),
    StructField("timestamp", TimestampType()),
    *(StructField(name, StringType())
      for name in ("run_id", "job", "task", "dataset", "layer", "event_type", "details")),
])


def append_dq_event(
    lakehouse: Lakehouse,
    metrics: DQMetrics,
    *,
    dataset: str,
    layer: str,
    run_id: str,
    job: str,
    task: str,
    timestamp: datetime | None = None,
) -> None:
    """Append one ``flow_progress`` event (details = the DLT-shaped metrics as JSON).

    The metrics also go to the running step's lineage events (``medallion.lakehouse.lineage``) and,
    in a local job run, to the run's DQ mirror that the run summary reads
    (``medallion.lakehouse.quality.run_mirror``).
    """
    observe_dq_metrics(metrics)
    event = (
        str(uuid.uuid4()),
        timestamp or datetime.now(UTC),
        run_id,
        job,
        task,
        dataset,
        layer,
        EVENT_TYPE,
        json.dumps(metrics.to_flow_progress(dataset), sort_keys=True),
    )
    write_events(lakehouse, dq_events_frame(lakehouse.spark, [event]))
    record_dq_check(metrics, dataset=dataset, layer=layer)


def dq_events_frame(spark: SparkSession, events: Sequence[Sequence[object]]) -> DataFrame:
    """``events`` (tuples in ``DQ_EVENT_SCHEMA``'s column order) as a DataFrame, built from Arrow
    (``local_frame``): a naive timestamp is local time."""
    return local_frame(spark, events, DQ_EVENT_SCHEMA)


def write_events(lakehouse: Lakehouse, events: DataFrame) -> None:
    """Append ``events`` (``DQ_EVENT_SCHEMA``) to the DQ event log.

    Parallel tasks append (and may create the log) at once: Delta lets one commit win and the
    write retries the others (``Lakehouse.write``). The log is created with
    ``EVENT_LOG_PROPERTIES``.
    """
    lakehouse.write(events, DQ_EVENT_LOG, mode="append", properties=EVENT_LOG_PROPERTIES)


def read_dq_events(lakehouse: Lakehouse, dataset: str | None = None) -> DataFrame:
    """The DQ events (of ``dataset`` when given); empty, with the log's columns, before any."""
    if not lakehouse.exists(DQ_EVENT_LOG):
        return dq_events_frame(lakehouse.spark, [])
    events = lakehouse.read(DQ_EVENT_LOG)
    return events.where(events["dataset"] == dataset) if dataset is not None else events


def check_and_log(
    lakehouse: Lakehouse,
    frame: DataFrame,
    spec: TableSpec,
    *,
    run_id: str,
    job: str,
    task: str,
    write_quarantine: Callable[[DataFrame], None] | None = None,
) -> CheckedFrame:
    """Run ``spec``'s expectations on ``frame`` and log the metrics, also when a fail rule fires.

    ``write_quarantine``, when given, writes the quarantined rows in the check's own pass (see
    ``check_expectations``).
    """
    try:
        checked = check_expectations(
            frame,
            spec.expectations,
            dataset=spec.dataset,
            run_id=run_id,
            key_columns=spec.keys,
            write_quarantine=write_quarantine,
        )
    except ExpectationsFailed as failure:
        append_dq_event(lakehouse, failure.metrics, dataset=spec.dataset, layer=spec.layer,
                        run_id=run_id, job=job, task=task)
        raise
    append_dq_event(lakehouse, checked.metrics, dataset=spec.dataset, layer=spec.layer,
                    run_id=run_id, job=job, task=task)
    return checked
