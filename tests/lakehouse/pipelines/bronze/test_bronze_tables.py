"""The bronze tables come from the bronze specs: one YAML file makes one more table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medallion.lakehouse.errors import SpecError
from medallion.lakehouse.pipelines.bronze import BronzeTable, bronze_table, bronze_tables
from medallion.lakehouse.settings import config_dir


def test_each_bronze_spec_is_a_table_fed_by_its_raw_source() -> None:
    assert bronze_tables() == {
        "crm_accounts": BronzeTable("crm_accounts", "crm", "accounts", "crm_accounts"),
        "customer_behavior": BronzeTable("customer_behavior", "redshift", "behavior",
                                         "customer_behavior"),
        "fx_rates": BronzeTable("fx_rates", "fx_rates", None, "fx_rates"),
        "kafka_orders": BronzeTable("kafka_orders", "kafka", "orders", "kafka_orders"),
        "snowflake_orders": BronzeTable("snowflake_orders", "snowflake", "orders",
                                        "snowflake_orders"),
    }


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's config, used instead of it."""
    copy = tmp_path / "config"
    shutil.copytree(config_dir(), copy)
    monkeypatch.setenv("MEDALLION_CONFIG_DIR", str(copy))
    return copy


def _spec(sources: str) -> str:
    return (f"dataset: bronze.web_clicks\nlayer: bronze\nsources: {sources}\nkeys: [click_id]\n"
            "load_pattern: offsets\n"
            "expectations:\n  expect:\n    key_present: \"click_id IS NOT NULL\"\n")


def test_a_new_bronze_spec_is_a_new_bronze_table(catalog: Path) -> None:
    (catalog / "dq" / "bronze" / "web_clicks.yml").write_text(_spec("[raw/web/clicks]"))
    assert bronze_table("bronze.web_clicks") == BronzeTable("web_clicks", "web", "clicks",
                                                            "web_clicks")


def test_a_bronze_spec_must_name_one_raw_source(catalog: Path) -> None:
    (catalog / "dq" / "bronze" / "web_clicks.yml").write_text(
        _spec("[raw/web/clicks, bronze.kafka_orders]"))
    with pytest.raises(SpecError, match=r"web_clicks\.yml: line 3: sources: expected one raw "):
        bronze_tables()
