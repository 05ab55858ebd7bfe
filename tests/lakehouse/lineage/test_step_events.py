"""Lineage of real steps on tiny tables: gold's whole COMPLETE event, bronze's contract FAIL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import SparkSession

from medallion.lakehouse.errors import ContractViolation
from medallion.lakehouse.lineage.columns import column_lineage, lineage_fields
from medallion.lakehouse.pipelines.bronze import load_bronze
from medallion.lakehouse.pipelines.gold import build_gold
from medallion.lakehouse.quality.breaker import BreakerResult, run_breaker_lineage
from medallion.lakehouse.quality.spec import spec_for
from medallion.lakehouse.raw.landing import land_records
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from medallion.lakehouse.transforms.gold.customer_360 import build_customer_360
from tests.lakehouse.lineage.helpers import (
    CUSTOMER_360_LINEAGE,
    PRODUCER,
    bare,
    read_events,
    run_event,
    stable,
)
from tests.support.spark_jobs import spark_jobs_of

DAY = date(2026, 11, 2)
RUN = "20261102T060000Z-3fa2c1"
SALT = "test-salt"
SILVER: dict[str, tuple[list[tuple[Any, ...]], str]] = {
    "silver.dim_customer": (
        [("cust_1", "Ann Lee", "ann@example.com", "+44 20 7946 0958", "GB", "customer")],
        "customer_id string, name string, email string, phone string, country string, "
        "lifecycle_stage string",
    ),
    "silver.fact_orders": (
        [("ord_1", "cust_1", datetime(2026, 11, 2, 9, tzinfo=UTC), "shipped", "EUR",
          Decimal("92.00"))],
        "order_id string, customer_id string, order_ts timestamp, status string, "
        "currency string, order_amount decimal(18,2)",
    ),
    "silver.fact_events": (
        [("evt_1", "sess_1", "cust_1", datetime(2026, 11, 2, 8, tzinfo=UTC))],
        "event_id string, session_id string, customer_id string, event_ts timestamp",
    ),
    "silver.fx_rates": (
        [(DAY, "EUR", Decimal("0.92000000"))],
        "rate_date date, currency string, rate decimal(18,8)",
    ),
}
# Direct column lineage of gold.fact_customer_360, as the design states it and beyond.
CUSTOMER_360_COLUMNS = [
    ("customer_id", "string"), ("name_masked", "string"), ("email_masked", "string"),
    ("phone_masked", "string"), ("country", "string"), ("lifecycle_stage", "string"),
    ("order_count", "bigint"), ("first_order_ts", "timestamp"), ("last_order_ts", "timestamp"),
    ("lifetime_value_usd", "decimal(18,2)"), ("event_count", "bigint"),
    ("session_count", "bigint"), ("last_seen_ts", "timestamp"),
]


@pytest.fixture(scope="module")
def lakehouse(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Lakehouse:
    """Silver tables of one customer with one order, one event and that day's EUR rate."""
    house = Lakehouse.open(spark, StorageRoot(tmp_path_factory.mktemp("lineage-steps")))
    for table, (rows, schema) in SILVER.items():
        house.write(local_frame(spark, rows, schema), table)
    return house


def namespace(lakehouse: Lakehouse) -> str:
    return f"medallion://{lakehouse.storage_root.path.as_posix()}"


def test_customer_360_column_lineage_comes_from_the_spark_plan(lakehouse: Lakehouse) -> None:
    gold = build_customer_360(
        *(lakehouse.read(table) for table in SILVER), salt=SALT
    )

    assert lineage_fields(column_lineage(gold)) == CUSTOMER_360_LINEAGE


def test_column_lineage_runs_no_spark_job(lakehouse: Lakehouse) -> None:
    gold = build_customer_360(
        *(lakehouse.read(table) for table in SILVER), salt=SALT
    )
    _, jobs = spark_jobs_of(lakehouse.spark, "column-lineage-runs-no-job",
                            lambda: column_lineage(gold))

    # Planning a scan of a Delta table lists its files with a Spark job; a lineage plans none.
    assert jobs == 0


def events_of(lakehouse: Lakehouse, job: str) -> list[dict[str, Any]]:
    return [e for e in read_events(lakehouse.storage_root.path) if e["job"]["name"] == job]


def facet(schema: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema, **fields}


def expected_gold_output(lakehouse: Lakehouse) -> dict[str, Any]:
    spec = spec_for("gold.fact_customer_360")
    return {
        "namespace": namespace(lakehouse),
        "name": "gold.fact_customer_360",
        "facets": {
            "schema": facet(
                "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json"
                "#/$defs/SchemaDatasetFacet",
                fields=[{"name": name, "type": kind, "fields": []}
                        for name, kind in CUSTOMER_360_COLUMNS],
            ),
            "dataQualityMetrics": facet(
                "https://openlineage.io/spec/facets/1-0-1/DataQualityMetricsDatasetFacet.json"
                "#/$defs/DataQualityMetricsDatasetFacet",
                rowCount=1, columnMetrics={},
            ),
            "dataQualityAssertions": facet(
                "https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json"
                "#/$defs/DataQualityAssertionsDatasetFacet",
                assertions=[
                    {"assertion": rule.name, "success": True, "severity": "error",
                     "content": rule.expression, "contentType": "sql",
                     "params": {"action": "fail", "passed_records": 1, "failed_records": 0}}
                    for rule in spec.expectations
                ],
            ),
            "columnLineage": facet(
                "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json"
                "#/$defs/ColumnLineageDatasetFacet",
                dataset=[],
                fields={
                    column: {"inputFields": [
                        {"namespace": namespace(lakehouse), "name": table, "field": field,
                         "transformations": [{"type": "DIRECT", "subtype": subtype}]}
                        for table, field, subtype in sources
                    ]}
                    for column, sources in CUSTOMER_360_LINEAGE.items()
                },
            ),
        },
        "outputFacets": {
            "outputStatistics": facet(
                "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json"
                "#/$defs/OutputStatisticsOutputDatasetFacet",
                rowCount=1,
            ),
        },
    }


def test_gold_build_emits_start_then_complete_with_every_facet(lakehouse: Lakehouse) -> None:
    build_gold(lakehouse, "gold.fact_customer_360", run_id=RUN, salt=SALT)

    events = stable(events_of(lakehouse, "build_gold.fact_customer_360"))
    parent = events[0]["run"]["facets"]["parent"]["run"]["runId"]
    run_facets = {
        "parent": facet(
            "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
            job={"facets": {}, "name": "build_analytics", "namespace": "medallion"},
            run={"facets": {}, "runId": parent},
        ),
        "medallion_task": facet(
            "urn:medallion-lakehouse:facets#/$defs/MedallionTaskRunFacet",
            job="build_analytics", job_run_id=RUN, task="build_gold.fact_customer_360",
        ),
    }
    inputs = [{"namespace": namespace(lakehouse), "name": table} for table in SILVER]
    gold = namespace(lakehouse), "gold.fact_customer_360"
    assert events == [
        run_event("START", "build_gold.fact_customer_360", inputs, [bare(*gold)], run_facets),
        run_event("COMPLETE", "build_gold.fact_customer_360", inputs,
                  [expected_gold_output(lakehouse)], run_facets),
    ]


def test_a_contract_violation_fails_with_the_schema_mismatch_status(
    lakehouse: Lakehouse,
) -> None:
    records = [{"date": "2026-11-02", "base": "USD", "currency": "EUR"}]  # no rate at all
    load = land_records(lakehouse.raw_root, "fx_rates", None, DAY, records).load_dir

    with pytest.raises(ContractViolation) as caught:
        load_bronze(lakehouse, "fx_rates", DAY, run_id="untracked")

    events = stable(events_of(lakehouse, "load_bronze.fx_rates"))
    inputs = [{"namespace": "file", "name": load.resolve().as_posix()}]
    outputs = [
        bare(namespace(lakehouse), table)
        for table in ("bronze.fx_rates", "bronze.fx_rates_unknown_columns",
                      "bronze.fx_rates_quarantine")
    ]
    assert events == [
        run_event("START", "load_bronze.fx_rates", inputs, outputs),
        run_event("FAIL", "load_bronze.fx_rates", inputs, outputs, {
            "errorMessage": facet(
                "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json"
                "#/$defs/ErrorMessageRunFacet",
                message=f"ContractViolation: {caught.value}", programmingLanguage="PYTHON",
                stackTrace="<trace>",
            ),
            "medallion_status": facet(
                "urn:medallion-lakehouse:facets#/$defs/MedallionStatusRunFacet",
                status="FAILED_SCHEMA_MISMATCH", error="ContractViolation",
            ),
        }),
    ]
    assert "rate" in str(caught.value)


def test_a_breaker_writes_no_table_and_reports_no_output_rows(lakehouse: Lakehouse) -> None:
    lineage = run_breaker_lineage(lakehouse, "silver", None)
    assert lineage.outputs == ()
    result = BreakerResult(layer="silver", checks=(), rows={"silver.fact_orders": 1})
    assert lineage.rows_written(result) == {}  # not the AttributeError a StepResult's reader hit
