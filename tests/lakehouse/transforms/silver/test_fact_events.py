"""silver.fact_events' dedupe (its spec): one row per event_id."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.spark import local_frame
from tests.support.shapes import (
    BEHAVIOR_BRONZE,
    DAY,
    LANDED,
    LANDED_LATER,
    NEXT_DAY,
    RUN,
    T0,
    kept_latest,
    marked_by_spec,
)

EVENTS = "silver.fact_events"
SESSION = "sess_0123456789abcdef"
FILE_1 = "raw/redshift/behavior/load_dt=2026-11-02/p.jsonl"
FILE_2 = "raw/redshift/behavior/load_dt=2026-11-03/p.jsonl"


def _event(event_id: str, file: str = FILE_1) -> tuple[object, ...]:
    landed, day = (LANDED, DAY) if file == FILE_1 else (LANDED_LATER, NEXT_DAY)
    return (
        event_id, SESSION, "cust_1", "page_view", T0, "/", "mobile", None, None,
        None, file, landed, RUN, day,
    )  # fmt: skip


def test_event_landed_twice_is_one_event_and_one_duplicate_record(spark: SparkSession) -> None:
    events = local_frame(
        spark,
        [_event("e1"), _event("e1", FILE_2), _event("e2")], BEHAVIOR_BRONZE
    )

    marked = marked_by_spec(EVENTS, events)

    expected = local_frame(
        spark,
        [
            (*_event("e1"), "duplicate_record"),
            (*_event("e1", FILE_2), None),
            (*_event("e2"), None),
        ],
        f"{BEHAVIOR_BRONZE}, _drop_rule STRING",
    )
    assertDataFrameEqual(marked, expected, checkRowOrder=False)


def test_latest_events_has_one_row_per_event_id(spark: SparkSession) -> None:
    events = local_frame(spark, [_event("e1"), _event("e1", FILE_2)], BEHAVIOR_BRONZE)

    latest = kept_latest(EVENTS, events)

    assertDataFrameEqual(latest, local_frame(spark, [_event("e1", FILE_2)], BEHAVIOR_BRONZE))
