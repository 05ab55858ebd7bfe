"""The DQ breaker's GE suites on inline rows: every kind of check, its outcome and its counts.

Every test runs on both of GE's engines the breaker uses: pandas (small checked frames, fetched
once) and Spark (frames over ``LOCAL_ROWS`` rows; forced here by a limit of 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pyspark.sql import DataFrame, SparkSession

from medallion.lakehouse.quality import breaker
from medallion.lakehouse.quality.breaker import BreakerCheck, BreakerResult, validate_table
from medallion.lakehouse.quality.spec import Action, Checks, Expectation, Lookup, TableSpec
from medallion.lakehouse.spark import local_frame

ORDERS_SCHEMA = "order_id STRING, customer_id STRING, amount INT, status STRING"
SPEC = TableSpec(
    dataset="silver.orders",
    layer="silver",
    keys=("order_id",),
    lookups=(Lookup("customer_exists", "silver.customers", ("customer_id",)),),
    expectations=(
        Expectation("amount_not_negative", "amount >= 0", Action.QUARANTINE),
        Expectation("status_known", "status IN ('placed', 'shipped')", Action.WARN),
        # Names a column the table does not have: it cannot be re-checked on the table.
        Expectation("raw_field_present", "raw_field IS NOT NULL", Action.QUARANTINE),
    ),
    checks=Checks(min_rows=1, max_rows=10),
)


@pytest.fixture(autouse=True, params=["pandas", "spark"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "spark":
        monkeypatch.setattr(breaker, "LOCAL_ROWS", 0)
    return str(request.param)


@pytest.fixture(scope="module")
def customers(spark: SparkSession) -> DataFrame:
    return local_frame(spark, [("c1",), ("c2",), ("c2",), (None,)], "customer_id STRING")


def checks_of(spark: SparkSession, rows: Sequence[tuple[object, ...]], customers: DataFrame,
              spec: TableSpec = SPEC) -> tuple[dict[str, BreakerCheck], int]:
    frame = local_frame(spark, rows, ORDERS_SCHEMA)
    checks, count = validate_table(spec, frame, {"silver.customers": customers})
    return {check.name: check for check in checks}, count


def test_clean_rows_pass_every_check_with_no_unexpected_row(
    spark: SparkSession, customers: DataFrame
) -> None:
    checks, rows = checks_of(spark, [("o1", "c1", 5, "placed"), ("o2", "c2", 0, "shipped")],
                             customers)

    assert rows == 2
    assert checks == {
        "row_count_in_bounds": BreakerCheck("silver.orders", "row_count_in_bounds", True, True),
        **{name: BreakerCheck("silver.orders", name, critical, True, unexpected=0)
           for name, critical in (("order_id_not_null", True), ("order_id_unique", True),
                                  ("customer_exists", True), ("amount_not_negative", True),
                                  ("status_known", False))},
    }


def test_each_failed_check_counts_exactly_its_unexpected_rows(
    spark: SparkSession, customers: DataFrame
) -> None:
    rows = [
        ("o1", "c1", 5, "placed"),
        ("o1", "c2", -1, "placed"),      # duplicate key, negative amount
        (None, "c9", 3, "lost"),          # null key, orphan customer, unknown status
        ("o3", None, None, "shipped"),    # NULL customer is an orphan, NULL amount is invalid
    ]
    checks, count = checks_of(spark, rows, customers)

    assert count == 4
    found = {name: (check.success, check.unexpected) for name, check in checks.items()}
    assert found == {
        "row_count_in_bounds": (True, None),
        "order_id_not_null": (False, 1),
        "order_id_unique": (False, 2),
        "customer_exists": (False, 2),
        "amount_not_negative": (False, 2),
        "status_known": (False, 1),
    }
    result = BreakerResult("silver", tuple(checks.values()))
    assert [check.name for check in result.critical_failures] == [
        "order_id_not_null", "order_id_unique", "customer_exists", "amount_not_negative",
    ]
    assert "silver.orders: amount_not_negative failed (2 unexpected rows)" in (
        result.failure_message()
    )


def test_a_warn_rule_that_fails_does_not_break(
    spark: SparkSession, customers: DataFrame
) -> None:
    checks, _ = checks_of(spark, [("o1", "c1", 5, "lost")], customers)

    result = BreakerResult("silver", tuple(checks.values()))
    assert (checks["status_known"].success, checks["status_known"].critical) == (False, False)
    assert result.passed


def test_a_row_count_out_of_bounds_breaks_and_reports_the_count(
    spark: SparkSession, customers: DataFrame
) -> None:
    checks, count = checks_of(spark, [], customers)

    assert count == 0
    assert checks["row_count_in_bounds"] == BreakerCheck(
        "silver.orders", "row_count_in_bounds", True, False, observed=0
    )


def test_bronze_checks_rules_and_row_count_but_not_keys_or_lookups(
    spark: SparkSession, customers: DataFrame
) -> None:
    bronze = TableSpec(dataset="bronze.orders", layer="bronze", keys=("order_id",),
                       lookups=SPEC.lookups, expectations=SPEC.expectations[:1],
                       checks=Checks(min_rows=1))
    checks, _ = checks_of(spark, [(None, "c9", -1, "placed")], customers, bronze)

    assert {name: check.success for name, check in checks.items()} == {
        "row_count_in_bounds": True, "amount_not_negative": False,
    }


def test_compound_keys_are_unique_together_and_each_present(
    spark: SparkSession, customers: DataFrame
) -> None:
    spec = TableSpec(dataset="silver.orders", layer="silver", keys=("order_id", "status"))
    rows = [("o1", "c1", 1, "placed"), ("o1", "c1", 2, "shipped"),  # unique together
            ("o2", "c1", 3, "placed"), ("o2", "c2", 4, "placed"),   # a duplicate pair
            ("o3", "c1", 5, None)]                                 # a null key part
    checks, count = checks_of(spark, rows, customers, spec)

    assert count == 5
    assert {name: (check.success, check.unexpected) for name, check in checks.items()} == {
        "order_id_not_null": (True, 0),
        "status_not_null": (False, 1),
        "order_id_status_unique": (False, 2),
    }
