"""Silver ``fact_orders``: Snowflake order versions and Kafka CDC events unified, latest per order.

Both sources describe the same orders. Snowflake (full load) carries every field of an order's
current version; a Kafka event carries the amount, currency and customer but only implies a status
through its ``op``. Both land in one shape, ``UNIFIED_ORDER_COLUMNS`` plus the metadata columns,
so one set of expectations and one dedupe apply to either: the generic silver step's, from
``config/dq/silver/fact_orders.yml`` (which names ``unify_orders`` as the table's transform).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import IntegerType, StringType

SNOWFLAKE = "snowflake"
KAFKA = "kafka"
SOURCE_RANKS: dict[str, int] = {SNOWFLAKE: 1, KAFKA: 0}
"""A tie on ``updated_at`` goes to the higher rank: Snowflake's row is the fuller one."""

KAFKA_OP_STATUS: dict[str, str] = {"c": "placed", "d": "cancelled"}
"""The status a Kafka op implies; ``u`` implies none (NULL: the current status stays)."""

ORDER_FIELDS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "order_ts",
    "status",
    "currency",
    "order_amount",
    "updated_at",
)
"""The order fields both sources carry (Kafka's under other names or implied by its op)."""

UNIFIED_ORDER_COLUMNS: tuple[str, ...] = (
    *ORDER_FIELDS,
    "op",
    "_source_system",
    "_source_rank",
)
METADATA_COLUMNS: tuple[str, ...] = (
    "_rescued_data",
    "_source_file",
    "_ingest_ts",
    "_run_id",
    "_proc_date",
)


def _metadata() -> list[Column]:
    """The bronze metadata columns, carried through unchanged."""
    return [sf.col(name) for name in METADATA_COLUMNS]


def _source(system: str) -> list[Column]:
    """Which source a row came from and its tie-break rank."""
    return [
        sf.lit(system).alias("_source_system"),
        sf.lit(SOURCE_RANKS[system]).cast(IntegerType()).alias("_source_rank"),
    ]


def unify_orders(snowflake: DataFrame, kafka: DataFrame) -> DataFrame:
    """``bronze.snowflake_orders`` and ``bronze.kafka_orders`` in one shape.

    Grain: one row per bronze row of either source (no key yet). Columns: order_id, customer_id,
    order_ts, status, currency, order_amount, updated_at, op (NULL for Snowflake), _source_system
    ('snowflake' | 'kafka'), _source_rank (1 | 0), then _rescued_data, _source_file, _ingest_ts,
    _run_id, _proc_date. Kafka: updated_at = event_ts; status from op (c -> placed,
    d -> cancelled, u -> NULL); order_ts = event_ts for op c (the order's creation), else NULL.
    Kafka's ``kafka_*`` columns are not carried: ``_source_file`` locates the record.
    """
    from_snowflake = snowflake.select(
        *(sf.col(name) for name in ORDER_FIELDS),
        sf.lit(None).cast(StringType()).alias("op"),
        *_source(SNOWFLAKE),
        *_metadata(),
    )
    op = sf.lower(sf.trim(sf.col("op")))
    status = sf.lit(None).cast(StringType())
    for code, implied in KAFKA_OP_STATUS.items():
        status = sf.when(op == code, sf.lit(implied)).otherwise(status)
    from_kafka = kafka.select(
        sf.col("order_id"),
        sf.col("customer_id"),
        sf.when(op == "c", sf.col("event_ts")).alias("order_ts"),
        status.alias("status"),
        sf.col("currency"),
        sf.col("order_amount"),
        sf.col("event_ts").alias("updated_at"),
        sf.col("op"),
        *_source(KAFKA),
        *_metadata(),
    )
    return from_snowflake.unionByName(from_kafka)
