"""How many Spark jobs a piece of work starts, in the suite's classic session."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pyspark.sql import SparkSession

T = TypeVar("T")


def spark_jobs_of(spark: SparkSession, group: str, work: Callable[[], T]) -> tuple[T, int]:
    """Run ``work`` under the job group ``group`` (a name no other test uses): what it returned,
    and how many Spark jobs it started."""
    context = spark.sparkContext
    context.setJobGroup(group, group)
    try:
        result = work()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    return result, len(context.statusTracker().getJobIdsForGroup(group))
