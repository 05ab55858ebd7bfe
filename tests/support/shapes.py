"""Bronze- and silver-shaped schemas and moments shared by the silver and gold tests, and the
generic step's dedupe of a table by its spec."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import DataFrame

from medallion.lakehouse.pipelines.silver import silver_table
from medallion.lakehouse.transforms.silver.dedupe import kept_rows

METADATA = (
    "_rescued_data MAP<STRING,STRING>, _source_file STRING, _ingest_ts TIMESTAMP, "
    "_run_id STRING, _proc_date DATE"
)
SNOWFLAKE_BRONZE = (
    "order_id STRING, customer_id STRING, order_ts TIMESTAMP, status STRING, currency STRING, "
    f"order_amount DECIMAL(18,2), updated_at TIMESTAMP, {METADATA}"
)
KAFKA_BRONZE = (
    "order_id STRING, customer_id STRING, order_amount DECIMAL(18,2), currency STRING, "
    "event_ts TIMESTAMP, op STRING, kafka_partition INT, kafka_offset BIGINT, "
    f"kafka_timestamp TIMESTAMP, kafka_key STRING, {METADATA}"
)
BEHAVIOR_BRONZE = (
    "event_id STRING, session_id STRING, customer_id STRING, event_type STRING, "
    "event_ts TIMESTAMP, page STRING, device STRING, referrer STRING, app_version STRING, "
    f"{METADATA}"
)
CRM_BRONZE = (
    "customer_id STRING, name STRING, email STRING, phone STRING, country STRING, "
    f"lifecycle_stage STRING, last_modified_date TIMESTAMP, {METADATA}"
)
FX_BRONZE = f"rate_date DATE, base STRING, currency STRING, rate DECIMAL(18,8), {METADATA}"
UNIFIED_ORDERS = (
    "order_id STRING, customer_id STRING, order_ts TIMESTAMP, status STRING, currency STRING, "
    "order_amount DECIMAL(18,2), updated_at TIMESTAMP, op STRING, _source_system STRING, "
    f"_source_rank INT, {METADATA}"
)
SILVER_ORDERS = (
    "order_id STRING, customer_id STRING, order_ts TIMESTAMP, status STRING, currency STRING, "
    "order_amount DECIMAL(18,2), updated_at TIMESTAMP"
)
SILVER_CUSTOMERS = (
    "customer_id STRING, name STRING, email STRING, phone STRING, country STRING, "
    "lifecycle_stage STRING, last_modified_date TIMESTAMP"
)
SILVER_EVENTS = (
    "event_id STRING, session_id STRING, customer_id STRING, event_type STRING, "
    "event_ts TIMESTAMP, page STRING, device STRING"
)
SILVER_FX = "rate_date DATE, base STRING, currency STRING, rate DECIMAL(18,8)"

DAY = date(2026, 11, 2)
NEXT_DAY = date(2026, 11, 3)
T0 = datetime(2026, 11, 2, 8, 0)
T1 = datetime(2026, 11, 2, 9, 0)
T2 = datetime(2026, 11, 2, 10, 0)
LANDED = datetime(2026, 11, 2, 23, 0)
LANDED_LATER = datetime(2026, 11, 3, 23, 0)
FILE_A = "raw/snowflake/orders/load_dt=2026-11-02/part-0.jsonl"
FILE_B = "raw/kafka/orders/load_dt=2026-11-02/part-0.jsonl"
RUN = "run-1"


def marked_by_spec(dataset: str, valid: DataFrame) -> DataFrame:
    """``valid`` with ``_drop_rule``, deduplicated as the generic step does by the table's spec."""
    return silver_table(dataset).mark_versions(valid)


def kept_latest(dataset: str, valid: DataFrame) -> DataFrame:
    """The rows of ``valid`` that the table's spec keeps: the latest version per key."""
    return kept_rows(marked_by_spec(dataset, valid))
