"""DQ metrics: conservation and the DLT event-log shape."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from medallion.lakehouse.errors import ConservationError
from medallion.lakehouse.quality import (
    Action,
    DQMetrics,
    Expectation,
    ExpectationMetrics,
    check_expectations,
)
from medallion.lakehouse.spark import local_frame

ORDERS_SCHEMA = "order_id STRING, amount INT"


def test_a_check_conserves_rows(spark: SparkSession) -> None:
    rows = local_frame(
        spark,
        [("o1", 5), (None, 5), ("o3", -1), ("o4", None), ("o5", 7)], ORDERS_SCHEMA
    )
    rules = [
        Expectation("order_id_not_null", "order_id IS NOT NULL", Action.QUARANTINE),
        Expectation("amount_not_negative", "amount >= 0", Action.DROP),
    ]

    metrics = check_expectations(rows, rules, dataset="silver.orders", run_id="r1").metrics

    assert (metrics.rows_in, metrics.rows_valid, metrics.rows_quarantined) == (5, 2, 1)
    assert dict(metrics.dropped_by_rule) == {"amount_not_negative": 2}
    assert metrics.dropped_records == 2


def test_counts_that_do_not_add_up_raise_conservation_error() -> None:
    metrics = DQMetrics(
        dataset="silver.orders",
        rows_in=10,
        rows_valid=6,
        rows_quarantined=2,
        dropped_by_rule={"duplicate_record": 1},
    )

    with pytest.raises(ConservationError) as raised:
        metrics.check_conservation()

    assert str(raised.value) == (
        "silver.orders: expected rows in = valid + quarantined + dropped by rule, found 10 in "
        "but 6 valid + 2 quarantined + 1 dropped (duplicate_record=1) = 9"
    )


def test_flow_progress_has_the_dlt_event_log_shape() -> None:
    metrics = DQMetrics(
        dataset="silver.orders",
        rows_in=10,
        rows_valid=6,
        rows_quarantined=1,
        dropped_by_rule={"duplicate_record": 2, "superseded_by_newer_version": 1},
        expectations=(
            ExpectationMetrics("order_id_not_null", "quarantine", "order_id IS NOT NULL", 9, 1),
            ExpectationMetrics("duplicate_record", "drop", "NOT is_duplicate", 8, 2),
        ),
    )

    assert metrics.to_flow_progress("silver.fact_orders") == {
        "flow_progress": {
            "metrics": {"num_output_rows": 6},
            "data_quality": {
                "dropped_records": 3,
                "expectations": [
                    {
                        "name": "order_id_not_null",
                        "dataset": "silver.fact_orders",
                        "passed_records": 9,
                        "failed_records": 1,
                    },
                    {
                        "name": "duplicate_record",
                        "dataset": "silver.fact_orders",
                        "passed_records": 8,
                        "failed_records": 2,
                    },
                ],
            },
        }
    }
