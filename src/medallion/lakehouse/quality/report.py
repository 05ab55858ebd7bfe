"""What the DQ layer did, for people: quarantine counts per rule and pass rates per dataset."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as sf

from medallion.lakehouse.quality.event_log import DQ_EVENT_LOG, EVENT_TYPE

DETAILS_SCHEMA = (
    "STRUCT<flow_progress: STRUCT<metrics: STRUCT<num_output_rows: BIGINT>, "
    "data_quality: STRUCT<dropped_records: BIGINT, expectations: ARRAY<STRUCT<name: STRING, "
    "dataset: STRING, passed_records: BIGINT, failed_records: BIGINT>>>>>"
)


@dataclass(frozen=True)
class RuleCount:
    """Rows of a quarantine table that failed one rule (a row failing two counts twice)."""

    table: str
    rule: str
    rows: int


@dataclass(frozen=True)
class PassRate:
    """A dataset's DQ outcome over every check in the event log."""

    dataset: str
    checks: int
    rows_checked: int
    rows_passed: int
    failing_rules: tuple[tuple[str, int], ...]

    @property
    def pass_rate(self) -> float:
        """Share of checked rows that passed every rule (1.0 when nothing was checked)."""
        return self.rows_passed / self.rows_checked if self.rows_checked else 1.0


def quarantine_counts(spark: SparkSession, tables: list[str]) -> list[RuleCount]:
    """Per quarantine table and rule, how many quarantined rows failed it."""
    counts: list[RuleCount] = []
    for table in tables:
        if not table.endswith("_quarantine"):
            continue
        rows = (
            spark.table(table)
            .select(sf.explode("_errors.name").alias("rule"))
            .groupBy("rule")
            .count()
            .orderBy(sf.desc("count"), "rule")
            .collect()
        )
        counts.extend(RuleCount(table, row["rule"], int(row["count"])) for row in rows)
    return counts


def pass_rates(spark: SparkSession, event_log: str = DQ_EVENT_LOG) -> list[PassRate]:
    """Per dataset, from the DQ event log: rows checked, rows passing every rule, worst rules."""
    events = spark.table(event_log).where(sf.col("event_type") == EVENT_TYPE).select(
        "dataset", sf.from_json("details", DETAILS_SCHEMA).alias("d")
    )
    progress = sf.col("d.flow_progress")
    per_event = events.select(
        "dataset",
        progress["metrics"]["num_output_rows"].alias("passed"),
        sf.expr(
            "aggregate(d.flow_progress.data_quality.expectations, 0L, "
            "(acc, e) -> greatest(acc, e.passed_records + e.failed_records))"
        ).alias("checked"),
        progress["data_quality"]["expectations"].alias("expectations"),
    )
    totals = {
        row["dataset"]: row
        for row in per_event.groupBy("dataset")
        .agg(sf.count(sf.lit(1)).alias("checks"), sf.sum("checked").alias("checked"),
             sf.sum("passed").alias("passed"))
        .collect()
    }
    failing: dict[str, list[tuple[str, int]]] = {}
    for row in (
        per_event.select("dataset", sf.explode("expectations").alias("e"))
        .groupBy("dataset", sf.col("e.name").alias("rule"))
        .agg(sf.sum("e.failed_records").alias("failed"))
        .where(sf.col("failed") > 0)
        .orderBy(sf.desc("failed"), "rule")
        .collect()
    ):
        failing.setdefault(row["dataset"], []).append((row["rule"], int(row["failed"])))
    return [
        PassRate(
            dataset=name,
            checks=int(row["checks"]),
            rows_checked=int(row["checked"] or 0),
            rows_passed=int(row["passed"] or 0),
            failing_rules=tuple(failing.get(name, [])),
        )
        for name, row in sorted(totals.items())
    ]
