"""Lookups: one boolean column per lookup, same rows otherwise."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.errors import SpecError
from medallion.lakehouse.quality import Lookup, add_lookups
from medallion.lakehouse.spark import local_frame

ORDERS_SCHEMA = "order_id STRING, customer_id STRING, currency STRING"
CUSTOMER_EXISTS = Lookup("customer_exists", "silver.dim_customer", ("customer_id",))


def test_a_lookup_flags_whether_the_key_exists(spark: SparkSession) -> None:
    orders = local_frame(
        spark,
        [("o1", "c1", "EUR"), ("o2", "c9", "EUR"), ("o3", None, "USD"), ("o4", "c1", "USD")],
        ORDERS_SCHEMA,
    )
    # c1 twice: distinct keys keep the join from multiplying orders.
    customers = local_frame(
        spark,
        [("c1", "Ada"), ("c1", "Ada"), ("c2", "Bo"), (None, "Nobody")],
        "customer_id STRING, name STRING",
    )

    flagged = add_lookups(orders, [CUSTOMER_EXISTS], {"silver.dim_customer": customers})

    assertDataFrameEqual(
        flagged,
        local_frame(
            spark,
            [
                ("o1", "c1", "EUR", True),
                ("o2", "c9", "EUR", False),
                ("o3", None, "USD", False),
                ("o4", "c1", "USD", True),
            ],
            f"{ORDERS_SCHEMA}, customer_exists BOOLEAN",
        ),
    )


def test_a_lookup_on_a_composite_key_against_the_same_frame(spark: SparkSession) -> None:
    rates = local_frame(
        spark,
        [("2026-11-02", "EUR", 1), ("2026-11-03", "EUR", 2)],
        "rate_date STRING, currency STRING, rate INT",
    )
    earlier = rates.where("rate_date = '2026-11-02'")
    lookup = Lookup("seen_before", "silver.fx_rates", ("rate_date", "currency"))

    flagged = add_lookups(rates, [lookup], {"silver.fx_rates": earlier})

    assert flagged.columns == ["rate_date", "currency", "rate", "seen_before"]
    assert sorted(flagged.select("rate", "seen_before").collect()) == [(1, True), (2, False)]


def test_a_lookup_without_its_table_names_what_is_missing(spark: SparkSession) -> None:
    orders = local_frame(spark, [("o1", "c1", "EUR")], ORDERS_SCHEMA)

    with pytest.raises(SpecError, match=r"lookup 'customer_exists': expected a frame for table "
                       r"'silver.dim_customer', found frames for \['silver.fx_rates'\]"):
        add_lookups(orders, [CUSTOMER_EXISTS], {"silver.fx_rates": orders})
