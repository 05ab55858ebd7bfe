"""FX on inline rows: contract-typed bronze -> silver by the FX spec (rules, dedupe) -> gold.

Raw -> bronze typing of FX records is tested with the other sources in
``tests/lakehouse/pipelines/bronze``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.pipelines.silver import silver_table
from medallion.lakehouse.quality.engine import check_expectations
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.gold.fx_daily_change import build_fx_daily_change
from medallion.lakehouse.transforms.silver.dedupe import DROP_RULE_COLUMN

BRONZE_SCHEMA = (
    "rate_date DATE, base STRING, currency STRING, rate DECIMAL(18,8), "
    "_rescued_data MAP<STRING,STRING>, _source_file STRING, _ingest_ts TIMESTAMP, _run_id STRING, "
    "_proc_date DATE"
)
SILVER_SCHEMA = (
    "rate_date DATE, base STRING, currency STRING, rate DECIMAL(18,8), _source_file STRING, "
    "_ingest_ts TIMESTAMP, _proc_date DATE"
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
    # bad rates and keys: each quarantined naming the rules it fails; values bronze could not type
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


def silver_of(bronze: DataFrame) -> tuple[DataFrame, DataFrame]:
    """What the generic silver step makes of FX bronze rows, by the FX spec: the kept rows (the
    table's columns) and the quarantined rows."""
    table = silver_table("silver.fx_rates")
    checked = check_expectations(
        table.spec.apply_transformations(bronze), table.spec.expectations,
        dataset=table.dataset, run_id=RUN,
    )
    kept = table.mark_versions(checked.valid).where(sf.col(DROP_RULE_COLUMN).isNull())
    return kept.select(*table.columns), checked.quarantined


def test_silver_cleans_quarantines_and_keeps_the_latest_row_per_key(spark: SparkSession) -> None:
    bronze = local_frame(spark, DIRTY_BRONZE, BRONZE_SCHEMA)

    silver, quarantined = silver_of(bronze)

    expected = local_frame(
        spark,
        [
            (D1, "USD", "EUR", Decimal("0.925"), FILE_B, LATE, D2),
            (D1, "USD", "GBP", Decimal("0.7791"), FILE_A, EARLY, D1),
        ],
        SILVER_SCHEMA,
    )
    assertDataFrameEqual(silver, expected, checkRowOrder=False)
    first_rule = quarantined.select(sf.col("currency"), sf.col("_errors")[0]["name"].alias("rule"))
    assertDataFrameEqual(
        first_rule,
        [
            Row(currency="JPY", rule="rate_is_positive_number"),
            Row(currency="CHF", rule="rate_is_positive_number"),
            Row(currency="CAD", rule="rate_is_positive_number"),
            Row(currency="AUD", rule="rate_date_is_valid_date"),
            Row(currency=None, rule="currency_is_iso_code"),
            Row(currency="EURO", rule="currency_is_iso_code"),
            Row(currency=None, rule="rate_date_is_valid_date"),
        ],
        checkRowOrder=False,
    )


def test_silver_tiebreak_on_equal_ingest_ts_goes_to_the_later_file(spark: SparkSession) -> None:
    rows = [
        (D1, "USD", "EUR", Decimal("0.9213"), None, FILE_A, EARLY, RUN, D1),
        (D1, "USD", "EUR", Decimal("0.9300"), None, FILE_B, EARLY, RUN, D1),
    ]
    expected = local_frame(
        spark,
        [(D1, "USD", "EUR", Decimal("0.93"), FILE_B, EARLY, D1)], SILVER_SCHEMA
    )

    for ordering in (rows, rows[::-1]):
        silver, _ = silver_of(local_frame(spark, ordering, BRONZE_SCHEMA).repartition(3))
        assertDataFrameEqual(silver, expected)


def test_gold_compares_each_rate_with_the_previous_available_one(spark: SparkSession) -> None:
    silver = local_frame(
        spark,
        [
            (D1, "USD", "EUR", Decimal("0.92"), FILE_A, EARLY, D1),
            (D2, "USD", "EUR", Decimal("0.93"), FILE_A, EARLY, D2),
            (D3, "USD", "EUR", Decimal("0.91"), FILE_A, EARLY, D3),  # D2 -> D3 skips a gap
            (D2, "USD", "JPY", Decimal("151.5"), FILE_A, EARLY, D2),
            (D3, "USD", "JPY", Decimal("151.5"), FILE_A, EARLY, D3),
        ],
        SILVER_SCHEMA,
    )

    gold = build_fx_daily_change(silver)

    expected = local_frame(
        spark,
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
