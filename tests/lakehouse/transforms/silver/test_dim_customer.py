"""silver.dim_customer's dedupe (its spec): a late CRM update replaces only when modified later."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.spark import local_frame
from tests.support.shapes import (
    CRM_BRONZE,
    DAY,
    LANDED,
    LANDED_LATER,
    NEXT_DAY,
    kept_latest,
    marked_by_spec,
)

DIM = "silver.dim_customer"
SCHEMA = CRM_BRONZE.replace(", _run_id STRING", "")
MODIFIED = datetime(2026, 11, 1, 12, 0)
EARLIER = datetime(2026, 10, 30, 12, 0)
LATER = datetime(2026, 11, 2, 12, 0)
FILE_1, FILE_2 = "raw/crm/accounts/load_dt=2026-11-02/p.jsonl", "raw/crm/accounts/x.jsonl"


def _version(stage: str, modified: datetime, landed: datetime, file: str) -> tuple[object, ...]:
    return (
        "cust_0000001", "Ada Lopez", "ada.lopez1@example.com", "+49 301 5550123", "DE", stage,
        modified, None, file, landed, DAY if landed == LANDED else NEXT_DAY,
    )  # fmt: skip


def test_late_update_modified_later_replaces_the_current_state(spark: SparkSession) -> None:
    current = _version("lead", MODIFIED, LANDED, FILE_1)
    late_newer = _version("customer", LATER, LANDED_LATER, FILE_2)

    latest = kept_latest(DIM, local_frame(spark, [current, late_newer], SCHEMA))

    assertDataFrameEqual(latest, local_frame(spark, [late_newer], SCHEMA))


def test_late_update_modified_earlier_does_not_replace(spark: SparkSession) -> None:
    current = _version("lead", MODIFIED, LANDED, FILE_1)
    late_older = _version("subscriber", EARLIER, LANDED_LATER, FILE_2)

    marked = marked_by_spec(DIM, local_frame(spark, [late_older, current], SCHEMA))

    expected = local_frame(
        spark,
        [(*current, None), (*late_older, "superseded_by_newer_version")],
        f"{SCHEMA}, _drop_rule STRING",
    )
    assertDataFrameEqual(marked, expected, checkRowOrder=False)


def test_same_version_landed_twice_keeps_the_later_landing(spark: SparkSession) -> None:
    first = _version("lead", MODIFIED, LANDED, FILE_1)
    again = _version("lead", MODIFIED, LANDED_LATER, FILE_2)

    marked = marked_by_spec(DIM, local_frame(spark, [first, again], SCHEMA))

    expected = local_frame(
        spark,
        [(*first, "duplicate_record"), (*again, None)], f"{SCHEMA}, _drop_rule STRING"
    )
    assertDataFrameEqual(marked, expected, checkRowOrder=False)
