"""FX rates through the layers: bronze ``fx_rates`` -> silver ``fx_rates`` -> gold daily change.

Raw -> bronze is the generic contract-driven step (``medallion.transforms.bronze``, contract
``config/schema_definitions/bronze/fx_rates.schema.json``); this module starts from typed bronze.

``rate`` is ``DECIMAL(18,8)``, not DOUBLE: the source publishes decimal numbers (6 places) and
decimals keep them exact, so a re-landed identical rate compares equal in the silver MERGE, sums and
``amount * rate`` in gold are exact and do not depend on partitioning (double sums do), and 10
integer digits leave room for weak currencies (IDR, VND per USD).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as sf
from pyspark.sql.types import DecimalType, StringType

RATE_TYPE = DecimalType(18, 8)
CHANGE_PCT_TYPE = DecimalType(18, 4)
SILVER_KEYS = ("rate_date", "currency")

# Rules describing a VALID row (SQL; NULL counts as a failure), checked in this order. A dropped row
# is attributed to the first rule it fails, so per-rule drop counts add up to the rows dropped.
FX_RATE_RULES: dict[str, str] = {
    "rate_date_is_valid_date": "rate_date IS NOT NULL",
    "currency_is_iso_code": "currency RLIKE '^[A-Z]{3}$'",
    "base_is_iso_code": "base RLIKE '^[A-Z]{3}$'",
    "rate_is_positive_number": "rate > 0",
}
DUPLICATE_RULE = "duplicate_key_superseded"


def type_fx_rates(bronze: DataFrame) -> DataFrame:
    """Contract-typed bronze rows to silver's columns, codes trimmed and upper-cased.

    Grain: one row per bronze row. Bronze already typed ``rate_date`` and ``rate`` by the
    contract: a value that did not parse is NULL there (its text in ``_rescued_data``) and fails
    a rule here, never an error.
    """
    return bronze.select(
        sf.col("rate_date"),
        sf.upper(sf.trim("base")).alias("base"),
        sf.upper(sf.trim("currency")).alias("currency"),
        sf.col("rate"),
        sf.col("_ingest_ts"),
        sf.col("_source_file"),
    )


def first_failed_fx_rate_rule() -> Column:
    """The name of the first rule in ``FX_RATE_RULES`` a typed row fails, NULL when it passes."""
    failed = sf.lit(None).cast(StringType())
    for name, predicate in reversed(FX_RATE_RULES.items()):
        failed = sf.when(~sf.coalesce(sf.expr(predicate), sf.lit(False)), sf.lit(name)).otherwise(
            failed
        )
    return failed


def drop_invalid_fx_rates(typed: DataFrame) -> DataFrame:
    """Keep the typed rows that pass every rule in ``FX_RATE_RULES`` (quarantine comes later).

    Grain: one row per valid typed row.
    """
    return typed.where(first_failed_fx_rate_rule().isNull())


def dedupe_fx_rates(valid: DataFrame) -> DataFrame:
    """Keep the latest row per key: highest ``_ingest_ts``, ties broken by the row's content.

    Grain and key: one row per (rate_date, currency).
    """
    latest_first = Window.partitionBy(*SILVER_KEYS).orderBy(
        sf.col("_ingest_ts").desc_nulls_last(),
        sf.col("_source_file").desc_nulls_last(),
        sf.col("rate").desc(),
        sf.col("base").asc(),
    )
    return (
        valid.withColumn("_rank", sf.row_number().over(latest_first))
        .where(sf.col("_rank") == 1)
        .drop("_rank")
    )


def clean_fx_rates(bronze: DataFrame) -> DataFrame:
    """Silver ``fx_rates``: typed, invalid rows dropped, latest row per key.

    Grain and key: one row per (rate_date, currency); ``base`` is the quote base (USD).
    Columns: rate_date DATE, base STRING, currency STRING, rate DECIMAL(18,8), _ingest_ts,
    _source_file.
    """
    return (
        bronze.transform(type_fx_rates).transform(drop_invalid_fx_rates).transform(dedupe_fx_rates)
    )


def count_fx_rate_outcomes(bronze: DataFrame) -> DataFrame:
    """What ``clean_fx_rates`` does to ``bronze``, counted in one pass.

    Grain: a single row. Columns: ``rows_in``, one per rule in ``FX_RATE_RULES`` (rows dropped by
    it first), ``duplicate_key_superseded`` and ``rows_out``; the drops and ``rows_out`` add up to
    ``rows_in``.
    """
    typed = type_fx_rates(bronze).withColumn("_failed_rule", first_failed_fx_rate_rule())
    valid = sf.col("_failed_rule").isNull()
    rows_out = sf.count_distinct(
        sf.when(valid, sf.struct(*(sf.col(key) for key in SILVER_KEYS)))
    ).alias("rows_out")
    return typed.agg(
        sf.count(sf.lit(1)).alias("rows_in"),
        *(
            sf.count(sf.when(sf.col("_failed_rule") == name, sf.lit(1))).alias(name)
            for name in FX_RATE_RULES
        ),
        (sf.count(sf.when(valid, sf.lit(1))) - rows_out).alias(DUPLICATE_RULE),
        rows_out,
    )


def build_fx_daily_change(silver: DataFrame) -> DataFrame:
    """Gold ``fx_daily_change``: each day's rate next to the previous available one.

    Grain and key: one row per (rate_date, currency), as in silver. ``previous_rate`` is the rate
    of the latest earlier ``rate_date`` present for that currency (gaps such as weekends skipped);
    ``change_pct`` = (rate - previous_rate) / previous_rate * 100, rounded half-up to 4 places;
    both NULL on a currency's first day.
    """
    by_currency = Window.partitionBy("currency").orderBy("rate_date")
    previous_rate = sf.lag("rate").over(by_currency)
    return silver.select(
        "rate_date",
        "currency",
        "base",
        "rate",
        sf.lag("rate_date").over(by_currency).alias("previous_rate_date"),
        previous_rate.alias("previous_rate"),
        sf.round((sf.col("rate") - previous_rate) / previous_rate * 100, 4)
        .cast(CHANGE_PCT_TYPE)
        .alias("change_pct"),
    )
