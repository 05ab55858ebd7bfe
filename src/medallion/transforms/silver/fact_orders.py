"""Silver ``fact_orders``: Snowflake order versions and Kafka CDC events unified, latest per order.

Both sources describe the same orders. Snowflake (full load) carries every field of an order's
current version; a Kafka event carries the amount, currency and customer but only implies a status
through its ``op``. Both land in one shape, ``UNIFIED_ORDER_COLUMNS`` plus the metadata columns,
so one set of expectations and one dedupe apply to either.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as sf
from pyspark.sql.types import IntegerType, StringType

from medallion.transforms.silver.dedupe import DROP_RULE_COLUMN, kept_rows, mark_duplicates

KEYS: tuple[str, ...] = ("order_id",)
SEQUENCE_BY = "updated_at"
SNOWFLAKE = "snowflake"
KAFKA = "kafka"
SOURCE_RANKS: dict[str, int] = {SNOWFLAKE: 1, KAFKA: 0}
"""A tie on ``updated_at`` goes to the higher rank: Snowflake's row is the fuller one."""

KAFKA_OP_STATUS: dict[str, str] = {"c": "placed", "d": "cancelled"}
"""The status a Kafka op implies; ``u`` implies none (NULL: the current status stays)."""

ORDER_MERGE_KEEP_CURRENT_WHEN_NULL: tuple[str, ...] = ("status", "order_ts")
"""Fields a CDC event lacks: on MERGE, a NULL here keeps the target's current value."""

FACT_ORDERS_COLUMNS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "order_ts",
    "status",
    "currency",
    "order_amount",
    "updated_at",
)
"""The business columns of ``silver.fact_orders`` in table order."""

UNIFIED_ORDER_COLUMNS: tuple[str, ...] = (
    *FACT_ORDERS_COLUMNS,
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
        *(sf.col(name) for name in FACT_ORDERS_COLUMNS),
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


def latest_first() -> list[Column]:
    """The kept-row ordering: latest ``updated_at``, Snowflake on a tie, then the latest landing."""
    return [
        sf.col(SEQUENCE_BY).desc_nulls_last(),
        sf.col("_source_rank").desc_nulls_last(),
        sf.col("_ingest_ts").desc_nulls_last(),
        sf.col("_source_file").desc_nulls_last(),
    ]


def mark_order_versions(valid: DataFrame) -> DataFrame:
    """Valid unified rows with ``_drop_rule`` (see ``dedupe.mark_duplicates``).

    Grain: one row per valid row; key of the kept rows: order_id. On the kept row, each field of
    ``ORDER_MERGE_KEEP_CURRENT_WHEN_NULL`` that is NULL (a CDC update) takes the latest non-NULL
    value among the order's rows in the batch, as the MERGE does with the target's current value:
    a batch holding both the ``c`` and a later ``u`` event of a new order keeps ``placed`` and the
    order_ts.
    """
    marked = mark_duplicates(valid, KEYS, latest_first())
    whole_key = (
        Window.partitionBy(*KEYS)
        .orderBy(*latest_first())
        .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    )
    kept = sf.col(DROP_RULE_COLUMN).isNull()
    for name in ORDER_MERGE_KEEP_CURRENT_WHEN_NULL:
        latest_known = sf.first(sf.col(name), ignorenulls=True).over(whole_key)
        marked = marked.withColumn(name, sf.when(kept, latest_known).otherwise(sf.col(name)))
    return marked.select(*valid.columns, DROP_RULE_COLUMN)


def latest_orders(valid: DataFrame) -> DataFrame:
    """The latest state of each order in the batch.

    Grain and key: one row per order_id. Latest by updated_at, a tie to Snowflake
    (``_source_rank`` desc), then the latest ``_ingest_ts``; status and order_ts filled from the
    order's earlier rows when the latest is a CDC event that lacks them. Columns: those of
    ``valid``.
    """
    return kept_rows(mark_order_versions(valid))
