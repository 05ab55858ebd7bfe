"""The expectation engine on inline rows: outcomes, `_errors`, attribution, FAIL, one job."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.quality import Action, Expectation, ExpectationsFailed, check_expectations
from medallion.lakehouse.quality.engine import ERRORS_TYPE
from medallion.lakehouse.spark import local_frame
from tests.support.spark_jobs import spark_jobs_of

ORDERS_SCHEMA = "order_id STRING, amount INT, status STRING"
QUARANTINED_SCHEMA = f"{ORDERS_SCHEMA}, _errors {ERRORS_TYPE}, _run_id STRING"
DROPPED_SCHEMA = f"{ORDERS_SCHEMA}, _errors {ERRORS_TYPE}, _dropped_by STRING"

ORDER_ID = Expectation("order_id_not_null", "order_id IS NOT NULL", Action.QUARANTINE)
AMOUNT = Expectation("amount_not_negative", "amount >= 0", Action.DROP)
SMALL = Expectation("amount_below_limit", "amount < 1000", Action.DROP)
STATUS = Expectation("status_known", "status IN ('placed', 'shipped')", Action.WARN)
POSITIVE = Expectation("amount_positive", "amount > 0", Action.FAIL)


def orders(spark: SparkSession, *rows: tuple[object, ...]) -> DataFrame:
    """Inline orders with the test schema."""
    return local_frame(spark, list(rows), ORDERS_SCHEMA)


def error(rule: Expectation) -> tuple[str, str]:
    """The `_errors` entry of a rule."""
    return (rule.name, rule.expression)


def test_null_predicate_counts_as_a_failure(spark: SparkSession) -> None:
    checked = check_expectations(
        orders(spark, ("o1", None, "placed"), ("o2", 5, "placed")),
        [AMOUNT],
        dataset="silver.orders",
        run_id="r1",
    )

    assertDataFrameEqual(checked.valid, orders(spark, ("o2", 5, "placed")))
    assertDataFrameEqual(
        checked.dropped,
        local_frame(
            spark,
            [("o1", None, "placed", [error(AMOUNT)], AMOUNT.name)], DROPPED_SCHEMA
        ),
    )


def test_valid_and_quarantined_rows_are_disjoint(spark: SparkSession) -> None:
    checked = check_expectations(
        orders(spark, ("o1", 5, "placed"), (None, 7, "placed"), ("o3", 9, "shipped")),
        [ORDER_ID],
        dataset="silver.orders",
        run_id="r1",
    )

    assertDataFrameEqual(checked.valid, orders(spark, ("o1", 5, "placed"), ("o3", 9, "shipped")))
    assertDataFrameEqual(
        checked.quarantined,
        local_frame(
            spark,
            [(None, 7, "placed", [error(ORDER_ID)], "r1")], QUARANTINED_SCHEMA
        ),
    )
    assert checked.dropped.count() == 0


def test_errors_list_every_failed_rule_of_any_action_in_spec_order(spark: SparkSession) -> None:
    checked = check_expectations(
        orders(spark, (None, -1, "lost")),
        [STATUS, AMOUNT, ORDER_ID],
        dataset="silver.orders",
        run_id="r1",
    )

    assertDataFrameEqual(
        checked.quarantined,
        local_frame(
            spark,
            [(None, -1, "lost", [error(STATUS), error(AMOUNT), error(ORDER_ID)], "r1")],
            QUARANTINED_SCHEMA,
        ),
    )


def test_quarantine_wins_over_drop(spark: SparkSession) -> None:
    checked = check_expectations(
        orders(spark, (None, -1, "placed")),
        [AMOUNT, ORDER_ID],
        dataset="silver.orders",
        run_id="r1",
    )

    assert checked.quarantined.select("order_id", "amount").collect() == [(None, -1)]
    assert checked.dropped.count() == 0
    assert (checked.metrics.rows_quarantined, dict(checked.metrics.dropped_by_rule)) == (
        1,
        {AMOUNT.name: 0},
    )


def test_dropped_rows_carry_the_rule_that_dropped_them(spark: SparkSession) -> None:
    checked = check_expectations(
        orders(spark, ("o1", -5, "placed"), ("o2", 5000, "placed"), ("o3", 5, "placed")),
        [SMALL, AMOUNT],
        dataset="silver.orders",
        run_id="r1",
    )

    assertDataFrameEqual(
        checked.dropped,
        local_frame(
            spark,
            [
                ("o1", -5, "placed", [error(AMOUNT)], AMOUNT.name),
                ("o2", 5000, "placed", [error(SMALL)], SMALL.name),
            ],
            DROPPED_SCHEMA,
        ),
    )
    assert dict(checked.metrics.dropped_by_rule) == {SMALL.name: 1, AMOUNT.name: 1}


def test_a_row_failing_two_drop_rules_counts_for_the_first_in_spec_order(
    spark: SparkSession,
) -> None:
    also_small = Expectation("amount_below_100", "amount < 100", Action.DROP)
    checked = check_expectations(
        orders(spark, ("o1", 5000, "placed")),
        [also_small, SMALL],
        dataset="silver.orders",
        run_id="r1",
    )

    assert dict(checked.metrics.dropped_by_rule) == {also_small.name: 1, SMALL.name: 0}
    assert [(rule.name, rule.failed_records) for rule in checked.metrics.expectations] == [
        (also_small.name, 1),
        (SMALL.name, 1),
    ]
    assert checked.dropped.select("_dropped_by").collect() == [(also_small.name,)]


def test_a_warn_rule_keeps_the_row_and_counts_it(spark: SparkSession) -> None:
    rows = orders(spark, ("o1", 5, "lost"), ("o2", 6, "placed"))
    checked = check_expectations(rows, [STATUS], dataset="silver.orders", run_id="r1")

    assertDataFrameEqual(checked.valid, rows)
    assert [rule.as_dict() for rule in checked.metrics.expectations] == [
        {
            "name": STATUS.name,
            "action": "warn",
            "expression": STATUS.expression,
            "passed_records": 1,
            "failed_records": 1,
        }
    ]


def test_a_fail_rule_raises_with_its_count_example_keys_and_the_metrics(
    spark: SparkSession,
) -> None:
    rows = orders(spark, ("o1", 0, "placed"), ("o2", -3, "placed"), ("o3", 4, "placed"))

    with pytest.raises(ExpectationsFailed) as raised:
        check_expectations(
            rows,
            [AMOUNT, POSITIVE],
            dataset="silver.orders",
            run_id="r1",
            key_columns=["order_id"],
        )

    message = str(raised.value)
    assert "silver.orders" in message
    assert "amount_positive (amount > 0) failed for 2 of 3 rows" in message
    assert "order_id='o1'" in message
    assert "order_id='o2'" in message
    assert raised.value.metrics.failed_of(POSITIVE.name) == 2
    assert raised.value.metrics.dropped_by_rule == {AMOUNT.name: 1}


def test_no_rules_keep_every_row(spark: SparkSession) -> None:
    rows = orders(spark, ("o1", 5, "placed"))
    checked = check_expectations(rows, [], dataset="silver.orders", run_id="r1")

    assertDataFrameEqual(checked.valid, rows)
    assert checked.quarantined.schema.simpleString() == (
        "struct<order_id:string,amount:int,status:string,"
        "_errors:array<struct<name:string,expression:string>>,_run_id:string>"
    )


def _jobs_of(spark: SparkSession, group: str, frame: DataFrame, rules: list[Expectation]) -> int:
    """How many Spark jobs one check starts."""
    return spark_jobs_of(spark, group, lambda: check_expectations(
        frame, rules, dataset="silver.orders", run_id="r1"))[1]


def test_all_rules_are_counted_in_one_aggregation(spark: SparkSession) -> None:
    frame = orders(spark, ("o1", 5, "placed"), (None, -1, "lost")).repartition(2)
    many = [
        Expectation(f"amount_above_{i}", f"amount > {i}", action)
        for i, action in enumerate([Action.WARN, Action.DROP, Action.QUARANTINE] * 4)
    ]
    adaptive = spark.conf.get("spark.sql.adaptive.enabled") or "true"
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    try:
        without_aqe = _jobs_of(spark, "dq-one-job-no-aqe", frame, many)
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", adaptive)
    # Adaptive execution runs the shuffle-map stage of an aggregation as a job of its own, so
    # with it on a check costs what one bare aggregation does, however many rules it has.
    _, baseline = spark_jobs_of(spark, "dq-baseline", frame.agg({"amount": "count"}).collect)

    assert without_aqe == 1
    assert _jobs_of(spark, "dq-one-rule", frame, many[:1]) == baseline
    assert _jobs_of(spark, "dq-twelve-rules", frame, many) == baseline


def test_counting_while_writing_the_quarantine_gives_the_eager_counts_and_rows(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = orders(
        spark,
        ("o1", 5, "placed"),
        (None, 7, "placed"),
        ("o3", -2, "lost"),
        ("o4", 5000, "shipped"),
        (None, None, None),
        ("o6", 9, "lost"),
    )
    rules = [ORDER_ID, AMOUNT, SMALL, STATUS]
    eager = check_expectations(rows, rules, dataset="silver.orders", run_id="r1")
    target = str(tmp_path / "quarantine")

    def write(quarantined: DataFrame) -> None:
        quarantined.write.format("delta").mode("overwrite").save(target)

    counted = check_expectations(
        rows, rules, dataset="silver.orders", run_id="r1", write_quarantine=write
    )

    assert counted.metrics == eager.metrics
    assert (counted.metrics.rows_in, counted.metrics.rows_quarantined) == (6, 2)
    assert counted.metrics.dropped_by_rule == {AMOUNT.name: 1, SMALL.name: 1}
    assertDataFrameEqual(spark.read.format("delta").load(target), eager.quarantined)
    assertDataFrameEqual(counted.valid, eager.valid)


def test_a_fail_rule_raises_before_the_quarantine_is_written(spark: SparkSession) -> None:
    written: list[DataFrame] = []
    rows = orders(spark, (None, 0, "placed"), ("o2", 4, "placed"))

    with pytest.raises(ExpectationsFailed, match="amount_positive"):
        check_expectations(
            rows,
            [ORDER_ID, POSITIVE],
            dataset="silver.orders",
            run_id="r1",
            write_quarantine=written.append,
        )
    assert written == []

    passing = orders(spark, (None, 3, "placed"), ("o2", 4, "placed"))
    checked = check_expectations(
        passing, [ORDER_ID, POSITIVE], dataset="silver.orders", run_id="r1",
        write_quarantine=written.append,
    )
    assert len(written) == 1
    assertDataFrameEqual(written[0], checked.quarantined)


def test_counting_while_writing_needs_no_job_besides_the_write(spark: SparkSession) -> None:
    frame = orders(spark, ("o1", 5, "placed"), (None, -1, "lost")).repartition(2)
    rules = [ORDER_ID, AMOUNT, STATUS]
    adaptive = spark.conf.get("spark.sql.adaptive.enabled") or "true"
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    try:
        checked, jobs = spark_jobs_of(spark, "dq-while-writing", lambda: check_expectations(
            frame,
            rules,
            dataset="silver.orders",
            run_id="r1",
            write_quarantine=lambda rows: rows.write.format("noop").mode("overwrite").save(),
        ))
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", adaptive)

    assert jobs == 1
    assert (checked.metrics.rows_in, checked.metrics.rows_quarantined) == (2, 1)


def test_quality_code_uses_only_dataframe_apis() -> None:
    """No RDD or SparkContext: the package must also run under Spark Connect."""
    package = Path(__file__).resolve().parents[3] / "src" / "medallion" / "lakehouse" / "quality"
    forbidden = {"rdd", "sparkContext", "SparkContext", "_jvm", "_jdf", "_jsc", "_jsparkSession"}
    found = [
        f"{path.name}:{getattr(node, 'lineno', 0)} {name}"
        for path in sorted(package.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        for name in [getattr(node, "attr", None) or getattr(node, "id", None)]
        if name in forbidden
    ]
    assert found == []
