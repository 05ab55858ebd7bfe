"""``local_frame`` gives the frame ``createDataFrame`` gives, by another road."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from pyspark.sql import Row, SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.spark import local_frame

SCHEMA = (
    "id STRING, amount DECIMAL(18,2), at TIMESTAMP, day DATE, "
    "_errors ARRAY<STRUCT<name:STRING,rule:STRING>>, extra MAP<STRING,STRING>, n BIGINT"
)


def test_a_local_frame_equals_the_frame_created_from_the_same_list(spark: SparkSession) -> None:
    rows = [
        ("o1", Decimal("1.50"), datetime(2026, 11, 2, 10, 30), date(2026, 11, 2),
         [("amount_positive", "amount > 0")], {"k": "v"}, 7),
        Row(id="o2", amount=None, at=datetime(2026, 11, 2, 23, 0, tzinfo=UTC), day=None,
            _errors=[], extra=None, n=None),
        ("o3", Decimal("-0.01"), None, date(2026, 11, 3), None, {}, -1),
    ]

    built = local_frame(spark, rows, SCHEMA)

    created = spark.createDataFrame(rows, SCHEMA)
    assert built.schema == created.schema
    assertDataFrameEqual(built, created)
    assert local_frame(spark, [], SCHEMA).schema == created.schema
