"""The FX transforms on inline rows: contract-typed bronze -> silver (rules, dedupe) -> gold.

Raw -> bronze typing of FX records is tested with the other sources in ``tests/bronze``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.transforms.fx_rates import (
    build_fx_daily_change,
    clean_fx_rates,
    count_fx_rate_outcomes,
)

BRONZE_SCHEMA = (
    "rate_date DATE, base STRING, currency STRING, rate DECIMAL(18,8), "
    "_rescued_data MAP<STRING,STRING>, _source_file STRING, _ingest_ts TIMESTAMP, _run_id STRING, "
    "_proc_date DATE"
)
SILVER_SCHEMA = (
    "rate_date DATE, base STRING, currency STRING, rate DECIMAL(18,8), _ingest_ts TIMESTAMP, "
    "_source_file STRING"
)
GOLD_SCHEMA = (
    "rate_date DATE, currency STRING, base STRING, rate DECIMAL(18,8), previous_rate_date DATE, "
    "previous_rate DECIMAL(18,8), change_pct DECIMAL(18,4)"
)
EARLY = datetime(2026, 11, 2, 6, 0)
LATE = datetime(2026, 11, 3, 6, 0)
D1, D2, D3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 5)
FILE_A = "raw/fx_rates/load_dt=2026-11-02/part-00000-aaaaaaaaaaaaaaaa.jsonl"
FILE_B = "raw/fx_rates/load_dt=2026-11-03/part-00000-bbbbbbbbbbbbbbbb.jsonl"


RUN = "untracked"
DIRTY_BRONZE = [
    # a late correction of EUR on D1 supersedes the early row
    (D1, "USD", "EUR", Decimal("0.9213"), None, FILE_A, EARLY, RUN, D1),
    (D1, "USD", "EUR", Decimal("0.9250"), None, FILE_B, LATE, RUN, D2),
    # untrimmed, lower case: cleaned, kept
    (D1, "usd", " gbp ", Decimal("0.7791"), None, FILE_A, EARLY, RUN, D1),
    # bad rates and keys: each dropped by the first rule it fails; values bronze could not type
    # arrive NULL with their text in _rescued_data
    (D1, "USD", "JPY", None, {"rate": "abc"}, FILE_A, EARLY, RUN, D1),
    (D1, "USD", "CHF", Decimal("-0.88"), None, FILE_A, EARLY, RUN, D1),
    (D1, "USD", "CAD", Decimal("0"), None, FILE_A, EARLY, RUN, D1),
    (None, "USD", "AUD", Decimal("1.53"), {"rate_date": "2026-02-30"}, FILE_A, EARLY, RUN, D1),
    (D1, "USD", None, Decimal("83.3"), None, FILE_A, EARLY, RUN, D1),
    (D1, "USD", "EURO", Decimal("0.92"), None, FILE_A, EARLY, RUN, D1),
    # an empty JSON object ({}): every column NULL
    (None, None, None, None, None, FILE_A, EARLY, RUN, D1),
]


def test_silver_types_filters_and_keeps_the_latest_row_per_key(spark: SparkSession) -> None:
    bronze = spark.createDataFrame(DIRTY_BRONZE, BRONZE_SCHEMA)

    silver = clean_fx_rates(bronze)

    expected = spark.createDataFrame(
        [
            (D1, "USD", "EUR", Decimal("0.925"), LATE, FILE_B),
            (D1, "USD", "GBP", Decimal("0.7791"), EARLY, FILE_A),
        ],
        SILVER_SCHEMA,
    )
    assertDataFrameEqual(silver, expected, checkRowOrder=False)


def test_silver_tiebreak_on_equal_ingest_ts_is_deterministic(spark: SparkSession) -> None:
    rows = [
        (D1, "USD", "EUR", Decimal("0.9213"), None, FILE_A, EARLY, RUN, D1),
        (D1, "USD", "EUR", Decimal("0.9300"), None, FILE_B, EARLY, RUN, D1),
        (D1, "USD", "EUR", Decimal("0.9100"), None, FILE_B, EARLY, RUN, D1),
    ]
    expected = spark.createDataFrame(
        [(D1, "USD", "EUR", Decimal("0.93"), EARLY, FILE_B)], SILVER_SCHEMA
    )

    for ordering in (rows, rows[::-1]):
        silver = clean_fx_rates(spark.createDataFrame(ordering, BRONZE_SCHEMA).repartition(3))
        assertDataFrameEqual(silver, expected)


def test_outcome_counts_add_up_to_rows_in(spark: SparkSession) -> None:
    bronze = spark.createDataFrame(DIRTY_BRONZE, BRONZE_SCHEMA)

    outcome = count_fx_rate_outcomes(bronze)

    expected = spark.createDataFrame(
        [(10, 2, 2, 0, 3, 1, 2)],
        "rows_in BIGINT, rate_date_is_valid_date BIGINT, currency_is_iso_code BIGINT, "
        "base_is_iso_code BIGINT, rate_is_positive_number BIGINT, "
        "duplicate_key_superseded BIGINT, rows_out BIGINT",
    )
    assertDataFrameEqual(outcome, expected)


def test_gold_compares_each_rate_with_the_previous_available_one(spark: SparkSession) -> None:
    silver = spark.createDataFrame(
        [
            (D1, "USD", "EUR", Decimal("0.92"), EARLY, FILE_A),
            (D2, "USD", "EUR", Decimal("0.93"), EARLY, FILE_A),
            (D3, "USD", "EUR", Decimal("0.91"), EARLY, FILE_A),  # D2 -> D3 skips a gap
            (D2, "USD", "JPY", Decimal("151.5"), EARLY, FILE_A),
            (D3, "USD", "JPY", Decimal("151.5"), EARLY, FILE_A),
        ],
        SILVER_SCHEMA,
    )

    gold = build_fx_daily_change(silver)

    expected = spark.createDataFrame(
        [
            (D1, "EUR", "USD", Decimal("0.92"), None, None, None),
            (D2, "EUR", "USD", Decimal("0.93"), D1, Decimal("0.92"), Decimal("1.0870")),
            (D3, "EUR", "USD", Decimal("0.91"), D2, Decimal("0.93"), Decimal("-2.1505")),
            (D2, "JPY", "USD", Decimal("151.5"), None, None, None),
            (D3, "JPY", "USD", Decimal("151.5"), D2, Decimal("151.5"), Decimal("0.0000")),
        ],
        GOLD_SCHEMA,
    )
    assertDataFrameEqual(gold, expected, checkRowOrder=False)
