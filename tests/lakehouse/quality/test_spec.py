"""Spec loading: a good file becomes a typed spec; each kind of mistake is a precise SpecError."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.errors import ConfigError, SpecError
from medallion.lakehouse.pipelines.publish import Published, published
from medallion.lakehouse.quality import (
    Action,
    Build,
    Checks,
    Expectation,
    Lookup,
    TableSpec,
    Transformations,
    build_order,
    load_spec,
    load_specs,
    spec_for,
)
from medallion.lakehouse.spark import local_frame

FACT_ORDERS = """\
dataset: silver.fact_orders
layer: silver
sources: [bronze.snowflake_orders, bronze.kafka_orders]
keys: [order_id]
sequence_by: updated_at
lookups:
  - name: customer_exists
    table: silver.dim_customer
    on: customer_id
transformations:
  select_exp: ["trim(order_id) AS order_id", "customer_id", "upper(currency) AS currency"]
  where_clause: ["order_id <> ''"]
expectations:
  expect_or_quarantine:
    order_id_not_null: "order_id IS NOT NULL"
    customer_in_dim_customer: "customer_exists"
  expect_or_drop:
    duplicate_record: "NOT is_duplicate"
  expect:
    currency_known: "currency IN ('EUR', 'USD')"
  expect_all_or_quarantine:
    order_amount_is_decimal: "_rescued_data['order_amount'] IS NULL"
checks:
  min_rows: 1
build:
  transform: medallion.lakehouse.transforms.silver.fact_orders:unify_orders
  columns: [order_id, customer_id, currency]
  tie_break: [_source_rank]
"""
GOLD_ORDERS_DAILY = """\
dataset: gold.orders_daily
layer: gold
sources: [silver.fact_orders]
build:
  transform: medallion.lakehouse.transforms.gold.orders_daily:build_orders_daily
  grain: {sums: orders, of: silver.fact_orders}
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config folder the loader reads instead of the repository's."""
    monkeypatch.setenv("MEDALLION_CONFIG_DIR", str(tmp_path))
    return tmp_path


def write_spec(config: Path, layer: str, table: str, text: str) -> Path:
    """Write ``<config>/dq/<layer>/<table>.yml``."""
    path = config / "dq" / layer / f"{table}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def spec_error(config: Path, text: str, table: str = "fact_orders") -> str:
    """The SpecError message of loading ``text`` as ``silver/<table>.yml``."""
    path = write_spec(config, "silver", table, text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    message = str(raised.value)
    assert str(path) in message
    return message


def test_a_good_spec_loads_into_typed_objects(config: Path) -> None:
    write_spec(config, "silver", "fact_orders", FACT_ORDERS)

    assert spec_for("silver.fact_orders") == TableSpec(
        dataset="silver.fact_orders",
        layer="silver",
        sources=("bronze.snowflake_orders", "bronze.kafka_orders"),
        keys=("order_id",),
        sequence_by="updated_at",
        quarantine_table="silver.fact_orders_quarantine",
        lookups=(Lookup("customer_exists", "silver.dim_customer", ("customer_id",)),),
        transformations=Transformations(
            select_exp=("trim(order_id) AS order_id", "customer_id", "upper(currency) AS currency"),
            where_clause=("order_id <> ''",),
        ),
        expectations=(
            Expectation("order_id_not_null", "order_id IS NOT NULL", Action.QUARANTINE),
            Expectation("customer_in_dim_customer", "customer_exists", Action.QUARANTINE),
            Expectation("duplicate_record", "NOT is_duplicate", Action.DROP),
            Expectation("currency_known", "currency IN ('EUR', 'USD')", Action.WARN),
            Expectation(
                "order_amount_is_decimal",
                "_rescued_data['order_amount'] IS NULL",
                Action.QUARANTINE,
            ),
        ),
        checks=Checks(min_rows=1, max_rows=None),
        build=Build(
            transform="medallion.lakehouse.transforms.silver.fact_orders:unify_orders",
            columns=("order_id", "customer_id", "currency"),
            tie_break=("_source_rank",),
        ),
    )


def test_load_specs_reads_every_file_of_a_layer(config: Path) -> None:
    write_spec(config, "silver", "fact_orders", FACT_ORDERS)
    write_spec(config, "gold", "orders_daily", GOLD_ORDERS_DAILY)

    assert list(load_specs("silver")) == ["silver.fact_orders"]
    assert list(load_specs()) == ["silver.fact_orders", "gold.orders_daily"]


def test_transformations_select_then_filter(spark: SparkSession, config: Path) -> None:
    write_spec(config, "silver", "fact_orders", FACT_ORDERS)
    bronze = local_frame(
        spark,
        [(" o1 ", "c1", "eur", 5), ("", "c2", "usd", 6)],
        "order_id STRING, customer_id STRING, currency STRING, amount INT",
    )

    selected = spec_for("silver.fact_orders").apply_transformations(bronze)

    assertDataFrameEqual(
        selected,
        local_frame(
            spark,
            [("o1", "c1", "EUR")], "order_id STRING, customer_id STRING, currency STRING"
        ),
    )


def test_a_misspelt_group_names_the_key_path_and_suggests_the_fix(config: Path) -> None:
    message = spec_error(
        config, FACT_ORDERS.replace("expect_or_quarantine:", "expect_or_quarantin:")
    )

    assert (
        "line 14: expectations.expect_or_quarantin: unknown key 'expect_or_quarantin'; "
        "did you mean 'expect_or_quarantine'?"
    ) in message


def test_a_rule_that_is_not_a_string_says_what_was_expected_and_found(config: Path) -> None:
    message = spec_error(
        config,
        FACT_ORDERS.replace('order_id_not_null: "order_id IS NOT NULL"', "order_id_not_null: 5"),
    )

    assert (
        "line 15: expectations.expect_or_quarantine.order_id_not_null: "
        "expected a string, found an integer 5"
    ) in message


def test_a_rule_name_that_is_not_snake_case_is_refused(config: Path) -> None:
    message = spec_error(config, FACT_ORDERS.replace("order_id_not_null:", "OrderIdNotNull:"))

    assert (
        "expectations.expect_or_quarantine.OrderIdNotNull: expected a snake_case rule name "
        "(^[a-z][a-z0-9_]*$), found 'OrderIdNotNull'"
    ) in message


def test_a_missing_required_key_is_named(config: Path) -> None:
    message = spec_error(config, FACT_ORDERS.replace("layer: silver\n", ""))

    assert "layer: expected the key 'layer', found none; add it" in message


def test_a_rule_name_used_in_two_groups_is_refused(config: Path) -> None:
    message = spec_error(
        config,
        FACT_ORDERS.replace('duplicate_record: "NOT is_duplicate"', 'order_id_not_null: "true"'),
    )

    assert (
        "expectations.expect_or_drop.order_id_not_null: expected a rule name used once per "
        "spec, found 'order_id_not_null' again (first at "
        "expectations.expect_or_quarantine.order_id_not_null); rename one"
    ) in message


def test_a_dataset_that_does_not_match_its_file_is_refused(config: Path) -> None:
    message = spec_error(config, FACT_ORDERS, table="orders")

    assert (
        "line 1: dataset: expected 'silver.orders' (the file is silver/orders.yml), "
        "found 'silver.fact_orders'"
    ) in message


def test_a_layer_that_does_not_match_its_folder_is_refused(config: Path) -> None:
    message = spec_error(config, FACT_ORDERS.replace("layer: silver", "layer: gold"))

    assert "line 2: layer: expected 'silver' (the file is in the folder silver/), found 'gold'" in (
        message
    )


def test_a_predicate_that_does_not_parse_is_refused(config: Path) -> None:
    message = spec_error(
        config, FACT_ORDERS.replace('"order_id IS NOT NULL"', '"order_id IS NOT"')
    )

    assert (
        "line 15: expectations.expect_or_quarantine.order_id_not_null: expected a Spark SQL "
        "predicate, found 'order_id IS NOT' (does not parse: "
    ) in message


def test_a_select_expression_that_does_not_parse_is_refused(config: Path) -> None:
    message = spec_error(config, FACT_ORDERS.replace('"customer_id",', '"trim(customer_id",'))

    assert (
        "transformations.select_exp[1]: expected a Spark SQL select expression, "
        "found 'trim(customer_id' (does not parse: unbalanced parentheses or brackets)"
    ) in message


def test_a_statement_in_place_of_a_predicate_is_refused(config: Path) -> None:
    message = spec_error(
        config, FACT_ORDERS.replace("\"order_id <> ''\"", '"true; DROP TABLE silver.x"')
    )

    assert (
        "transformations.where_clause[0]: expected a Spark SQL predicate, found "
        "'true; DROP TABLE silver.x' (does not parse: a statement, not an expression)"
    ) in message


def test_a_missing_spec_suggests_the_closest_one(config: Path) -> None:
    write_spec(config, "silver", "fact_orders", FACT_ORDERS)

    with pytest.raises(SpecError) as raised:
        spec_for("silver.fact_order")

    assert str(raised.value) == (
        "no DQ spec for 'silver.fact_order': expected the file "
        f"{(config / 'dq' / 'silver' / 'fact_order.yml').resolve()}; "
        "did you mean 'silver.fact_orders'?"
    )


def test_a_build_section_missing_what_the_layer_needs_names_each_gap(config: Path) -> None:
    silver = FACT_ORDERS.replace("  columns: [order_id, customer_id, currency]\n", "")
    gold = GOLD_ORDERS_DAILY.replace(
        "grain: {sums: orders, of: silver.fact_orders}", "grain: {rows_per: silver.dim_customer}"
    )

    silver_message = spec_error(config, silver)
    gold_path = write_spec(config, "gold", "orders_daily", gold)
    with pytest.raises(SpecError) as raised:
        load_spec(gold_path)

    assert "build.columns: expected the table's business columns, found none" in silver_message
    assert (
        "build.grain.rows_per: expected one of the sources ['silver.fact_orders'], "
        "found 'silver.dim_customer'"
    ) in str(raised.value)


def test_a_full_load_that_is_not_a_source_of_the_table_is_named(config: Path) -> None:
    silver = FACT_ORDERS.replace("  tie_break: [_source_rank]\n", "  tie_break: [_source_rank]\n"
                                 "  full_loads: [bronze.snowflake_order]\n")

    message = spec_error(config, silver)

    assert ("build.full_loads: expected sources of the table ['bronze.snowflake_orders', "
            "'bronze.kafka_orders'], found ['bronze.snowflake_order']") in message


def test_tables_are_ordered_after_the_tables_of_their_layer_they_read(config: Path) -> None:
    write_spec(config, "silver", "fact_orders", FACT_ORDERS)
    dim = FACT_ORDERS.replace("silver.fact_orders", "silver.dim_customer").replace(
        "table: silver.dim_customer", "table: silver.elsewhere"  # reads no silver table
    )
    write_spec(config, "silver", "dim_customer", dim)
    write_spec(config, "silver", "a_first", FACT_ORDERS.replace(
        "silver.fact_orders", "silver.a_first"
    ).replace("table: silver.dim_customer", "table: silver.fact_orders"))

    ordered = [spec.dataset for spec in build_order(load_specs("silver").values())]

    assert ordered == ["silver.dim_customer", "silver.fact_orders", "silver.a_first"]


def test_the_served_gold_tables_come_from_their_publish_section() -> None:
    assert published("gold.fact_customer_360") == Published(
        keys=("customer_id",), sum_columns=("lifetime_value_usd", "order_count", "event_count")
    )
    with pytest.raises(ConfigError, match=r"not published; expected one of \['gold.fact_cu"):
        published("gold.orders_daily")
