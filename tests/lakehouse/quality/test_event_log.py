"""The DQ event log: an appended event reads back with its DLT-shaped details."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.quality import DQ_EVENT_LOG, DQMetrics, append_dq_event, read_dq_events
from medallion.lakehouse.quality.event_log import DQ_EVENT_SCHEMA, dq_events_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse, discover_tables

METRICS = DQMetrics(
    dataset="silver.fact_orders",
    rows_in=3,
    rows_valid=2,
    rows_quarantined=1,
    dropped_by_rule={},
)
AT = datetime(2026, 11, 3, 6, 0, tzinfo=UTC)


def test_an_event_round_trips_through_the_log(spark: SparkSession, tmp_path: Path) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    assert read_dq_events(lakehouse).count() == 0

    append_dq_event(
        lakehouse, METRICS, dataset="silver.fact_orders", layer="silver", run_id="r1",
        job="build_analytics", task="silver_fact_orders", timestamp=AT,
    )
    append_dq_event(
        lakehouse, METRICS, dataset="silver.fx_rates", layer="silver", run_id="r1",
        job="build_analytics", task="silver_fx_rates", timestamp=AT,
    )

    events = read_dq_events(lakehouse, "silver.fact_orders")
    details = json.dumps(METRICS.to_flow_progress("silver.fact_orders"), sort_keys=True)
    assertDataFrameEqual(
        events.drop("id"),
        spark.createDataFrame(
            [(AT, "r1", "build_analytics", "silver_fact_orders", "silver.fact_orders", "silver",
              "flow_progress", details)],
            StructType(DQ_EVENT_SCHEMA.fields[1:]),
        ),
    )
    [event] = events.collect()
    assert str(uuid.UUID(event["id"])) == event["id"]
    assert json.loads(event["details"])["flow_progress"]["metrics"] == {"num_output_rows": 2}
    assert discover_tables(StorageRoot(tmp_path)) == [DQ_EVENT_LOG]
    # Created to checkpoint its log every 100 commits, not Delta's 10 (one in a build's tasks).
    properties = spark.sql(f"SHOW TBLPROPERTIES {lakehouse.name(DQ_EVENT_LOG)}").collect()
    assert {row["key"]: row["value"] for row in properties}["delta.checkpointInterval"] == "100"


def test_events_built_from_arrow_equal_the_same_events_built_from_a_list(
    spark: SparkSession,
) -> None:
    events = [
        ("e1", AT, "r1", "build_analytics", "silver_fact_orders", "silver.fact_orders", "silver",
         "flow_progress", '{"flow_progress": {}}'),
        ("e2", datetime(2026, 11, 3, 7, 30, 15, 250000, tzinfo=timezone(timedelta(hours=2))),
         "r1", "dq_watchdog", "watch_tables", "gold.orders_daily", "gold", "watchdog_check",
         None),
    ]

    built = dq_events_frame(spark, events)

    assert built.schema == DQ_EVENT_SCHEMA
    assertDataFrameEqual(built, spark.createDataFrame(events, DQ_EVENT_SCHEMA))
    assert [row["timestamp"].astimezone(UTC) for row in built.collect()] == [
        AT, datetime(2026, 11, 3, 5, 30, 15, 250000, tzinfo=UTC)]
    assertDataFrameEqual(dq_events_frame(spark, []), spark.createDataFrame([], DQ_EVENT_SCHEMA))


def test_without_pyarrow_events_are_built_from_the_list_alike(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [("e1", AT, "r1", "build_analytics", "silver_fact_orders", "silver.fact_orders",
               "silver", "flow_progress", None)]
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError

    assertDataFrameEqual(dq_events_frame(spark, events),
                         spark.createDataFrame(events, DQ_EVENT_SCHEMA))
