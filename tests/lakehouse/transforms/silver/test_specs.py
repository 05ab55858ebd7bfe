"""The silver and gold DQ specs: they load, their value sets are the generator's, and their
select_exp and rules put each dirt kind of a bronze-shaped frame under the rule the design names."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.quality.spec import TableSpec, load_spec
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.silver.fact_orders import unify_orders
from medallion.platform.generate import vocab
from tests.support.shapes import (
    BEHAVIOR_BRONZE,
    CRM_BRONZE,
    DAY,
    FX_BRONZE,
    KAFKA_BRONZE,
    LANDED,
    RUN,
    SNOWFLAKE_BRONZE,
    T0,
    T1,
)

DQ_DIR = Path(__file__).resolve().parents[4] / "config" / "dq"
SPEC_FILES = sorted(DQ_DIR.glob("silver/*.yml")) + sorted(DQ_DIR.glob("gold/*.yml"))
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "status_in_set": vocab.ORDER_STATUSES,
    "currency_in_set": vocab.ORDER_CURRENCIES,
    "event_type_in_set": vocab.EVENT_TYPES,
    "device_in_set": vocab.DEVICES,
    "lifecycle_stage_in_set": vocab.LIFECYCLE_STAGES,
    "country_in_set": vocab.COUNTRY_CODES,
}
KNOWN_CUSTOMERS = ("cust_1",)
FUTURE = datetime(2026, 11, 3, 0, 0)
META = (None, "raw/x.jsonl", LANDED, RUN, DAY)
RESCUED = ({"order_amount": "18,76"}, "raw/x.jsonl", LANDED, RUN, DAY)
FAILED = "key STRING, failed ARRAY<STRING>"


def _spec(layer: str, table: str) -> TableSpec:
    return load_spec(DQ_DIR / layer / f"{table}.yml")


def _failed_rules(spec: TableSpec, checked: DataFrame, key: Column) -> DataFrame:
    """Each row's key and the names of the rules it fails (any action), in spec order."""
    failures = [
        sf.when(~sf.coalesce(sf.expr(rule.expression), sf.lit(False)), sf.lit(rule.name))
        for rule in spec.expectations
    ]
    return checked.select(key.alias("key"), sf.array_compact(sf.array(*failures)).alias("failed"))


def _with_lookup(frame: DataFrame) -> DataFrame:
    """The ``customer_exists`` flag the engine's lookup adds (a NULL key is not found)."""
    found = sf.coalesce(sf.col("customer_id").isin(*KNOWN_CUSTOMERS), sf.lit(False))
    return frame.withColumn("customer_exists", found)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_spec_parses_and_loads(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))

    spec = load_spec(path)

    assert spec.dataset == document["dataset"] == f"{path.parent.name}.{path.stem}"


def test_value_sets_are_the_generators() -> None:
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for path in SPEC_FILES:
        for rule in load_spec(path).expectations:
            if rule.name in VALUE_SETS:
                listed = re.search(r"\bIN \(([^)]*)\)", rule.expression)
                assert listed, f"{path.name}: {rule.name} lists no values"
                found[(path.stem, rule.name)] = tuple(re.findall(r"'([^']*)'", listed[1]))

    expected = {(table, name): VALUE_SETS[name] for table, name in found}
    assert found == expected
    assert {name for _, name in found} == set(VALUE_SETS)


def test_session_id_rule_is_the_generators_pattern() -> None:
    rules = {rule.name: rule.expression for rule in _spec("silver", "fact_events").expectations}

    assert rules["session_id_format"] == f"session_id RLIKE '{vocab.SESSION_ID_PATTERN}'"


def test_fact_orders_rules_name_each_dirt_kind(spark: SparkSession) -> None:
    def snowflake(key: str | None, **changes: object) -> tuple[object, ...]:
        row: dict[str, object] = {
            "order_id": key,
            "customer_id": " cust_1 ",
            "order_ts": T0,
            "status": "placed",
        }
        row |= {"currency": "eur", "order_amount": Decimal("18.76"), "updated_at": T0}
        row |= changes
        meta = RESCUED if row["order_amount"] is None else META
        return (*row.values(), *meta)

    def kafka(key: str, op: str, event_ts: datetime = T1) -> tuple[object, ...]:
        return (key, "cust_1", Decimal("5.00"), "EUR", event_ts, op, 0, 1, T1, key, *META)

    snowflake_rows = local_frame(
        spark,
        [
            snowflake("s_clean"),
            snowflake(None),
            snowflake("s_wrong_type", order_amount=None),
            snowflake("s_status", status="unknown"),
            snowflake("s_currency", currency="XXX"),
            snowflake("s_orphan", customer_id="cust_9"),
            snowflake("s_negative", order_amount=Decimal("-18.76")),
        ],
        SNOWFLAKE_BRONZE,
    )
    kafka_rows = local_frame(
        spark,
        [
            kafka("k_create", "c"),
            kafka("k_update", "u"),
            kafka("k_delete", " D "),
            kafka("k_bad_op", "x"),
            kafka("k_future", "u", FUTURE),
        ],
        KAFKA_BRONZE,
    )
    spec = _spec("silver", "fact_orders")

    silver = spec.apply_transformations(unify_orders(snowflake_rows, kafka_rows))
    failed = _failed_rules(spec, _with_lookup(silver), sf.col("order_id"))

    expected = local_frame(
        spark,
        [
            ("s_clean", []),
            (None, ["order_id_not_null"]),
            ("s_wrong_type", ["order_amount_is_decimal"]),
            ("s_status", ["status_in_set"]),
            ("s_currency", ["currency_in_set"]),
            ("s_orphan", ["customer_in_dim_customer"]),
            ("s_negative", ["order_amount_not_negative"]),
            ("k_create", []),
            ("k_update", []),
            ("k_delete", []),
            ("k_bad_op", ["status_in_set", "order_ts_known"]),
            ("k_future", ["updated_at_not_in_future"]),
        ],
        FAILED,
    )
    assertDataFrameEqual(failed, expected, checkRowOrder=False)


def test_fact_events_rules_name_each_dirt_kind(spark: SparkSession) -> None:
    def event(key: str | None, **changes: object) -> tuple[object, ...]:
        row: dict[str, object] = {
            "event_id": key,
            "session_id": "sess_0123456789abcdef",
            "customer_id": "cust_1",
        }
        row |= {"event_type": " page_view ", "event_ts": T0, "page": "/", "device": "mobile"}
        row |= {"referrer": None, "app_version": None} | changes
        return (*row.values(), *META)

    bronze = local_frame(
        spark,
        [
            event("e_clean"),
            event(None),
            event("e_session_upper", session_id="sess_0123456789ABCDEF"),
            event("e_session_short", session_id="sess_0123456789abcde"),
            event("e_type", event_type="unknown"),
            event("e_device", device="smart_fridge"),
            event("e_orphan", customer_id="cust_9"),
            event("e_future", event_ts=FUTURE),
        ],
        BEHAVIOR_BRONZE,
    )
    spec = _spec("silver", "fact_events")

    silver = spec.apply_transformations(bronze)
    failed = _failed_rules(spec, _with_lookup(silver), sf.col("event_id"))

    expected = local_frame(
        spark,
        [
            ("e_clean", []),
            (None, ["event_id_not_null"]),
            ("e_session_upper", ["session_id_format"]),
            ("e_session_short", ["session_id_format"]),
            ("e_type", ["event_type_in_set"]),
            ("e_device", ["device_in_set"]),
            ("e_orphan", ["customer_in_dim_customer"]),
            ("e_future", ["event_ts_not_in_future"]),
        ],
        FAILED,
    )
    assertDataFrameEqual(failed, expected, checkRowOrder=False)


def test_dim_customer_select_exp_normalises_and_rules_name_each_dirt_kind(
    spark: SparkSession,
) -> None:
    def account(key: str | None, **changes: object) -> tuple[object, ...]:
        row: dict[str, object] = {
            "customer_id": key,
            "name": " Ada Lopez ",
            "email": " Ada.Lopez1@Example.com ",
        }
        row |= {"phone": "+49 301 5550123", "country": "de", "lifecycle_stage": "lead"}
        row |= {"last_modified_date": T0} | changes
        return (*row.values(), *META)

    bronze = local_frame(
        spark,
        [
            account(" c_clean "),
            account(None),
            account("c_stage", lifecycle_stage="unknown"),
            account("c_email", email="ada.example.com"),
            account("c_country", country="XX"),
        ],
        CRM_BRONZE,
    )
    spec = _spec("silver", "dim_customer")

    silver = spec.apply_transformations(bronze)
    failed = _failed_rules(spec, silver, sf.col("customer_id"))

    expected = local_frame(
        spark,
        [
            ("c_clean", []),
            (None, ["customer_id_not_null"]),
            ("c_stage", ["lifecycle_stage_in_set"]),
            ("c_email", ["email_format"]),
            ("c_country", ["country_in_set"]),
        ],
        FAILED,
    )
    assertDataFrameEqual(failed, expected, checkRowOrder=False)
    normalised = silver.where("customer_id = 'c_clean'").select("name", "email", "country")
    assertDataFrameEqual(
        normalised,
        local_frame(
            spark,
            [("Ada Lopez", "ada.lopez1@example.com", "DE")],
            "name STRING, email STRING, country STRING",
        ),
    )
    assert silver.columns[-4:] == ["_rescued_data", "_source_file", "_ingest_ts", "_proc_date"]


def test_fx_rates_rules_quarantine_unusable_rates(spark: SparkSession) -> None:
    def rate(currency: str, value: str | None, base: str = "usd") -> tuple[object, ...]:
        return (DAY, base, currency, None if value is None else Decimal(value), *META)

    bronze = local_frame(
        spark,
        [
            rate(" eur ", "0.92"),
            rate("JPY", "0"),
            rate("GBP", None),
            rate("EURO", "0.92"),
            rate("CHF", "1.09", base="EUR"),
        ],
        FX_BRONZE,
    )
    spec = _spec("silver", "fx_rates")

    silver = spec.apply_transformations(bronze)
    failed = _failed_rules(spec, silver, sf.col("currency"))

    expected = local_frame(
        spark,
        [
            ("EUR", []),
            ("JPY", ["rate_is_positive_number"]),
            ("GBP", ["rate_is_positive_number"]),
            ("EURO", ["currency_is_iso_code", "currency_in_set"]),
            ("CHF", ["base_is_usd"]),
        ],
        FAILED,
    )
    assertDataFrameEqual(failed, expected, checkRowOrder=False)
