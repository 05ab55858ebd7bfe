"""Where a publish goes: warehouse URLs (job parameters) into sinks and connection settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from medallion.clients.snowflake import SnowflakeSettings
from medallion.errors import ConfigError
from medallion.pipelines.ingest import snowflake_settings
from medallion.pipelines.publish import warehouse_sink
from medallion.serving.redshift import RedshiftSink
from medallion.serving.redshift_sql import POSTGRES
from medallion.serving.snowflake import SnowflakeSink


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret scope's warehouse credentials, as the local provider reads them."""
    monkeypatch.setenv("MEDALLION_SNOWFLAKE_USER", "publisher")
    monkeypatch.setenv("MEDALLION_SNOWFLAKE_PASSWORD", "sf-secret-1")
    monkeypatch.setenv("MEDALLION_REDSHIFT_USER", "loader")
    monkeypatch.setenv("MEDALLION_REDSHIFT_PASSWORD", "rs-secret-2")


@pytest.mark.usefixtures("credentials")
def test_a_snowflake_url_names_account_database_warehouse_and_role(tmp_path: Path) -> None:
    url = ("https://acme-eu1.snowflakecomputing.com"
           "?database=ANALYTICS_DB&warehouse=PUBLISH_WH&role=PUBLISHER")

    settings = snowflake_settings(tmp_path, url)

    assert settings == SnowflakeSettings(
        host="acme-eu1.snowflakecomputing.com", port=443, account="acme-eu1",
        user="publisher", password="sf-secret-1", database="ANALYTICS_DB", schema="SALES",
        protocol="https", warehouse="PUBLISH_WH", role="PUBLISHER",
    )
    assert "sf-secret-1" not in repr(settings)


@pytest.mark.usefixtures("credentials")
def test_a_snowflake_url_without_options_takes_the_defaults(tmp_path: Path) -> None:
    settings = snowflake_settings(tmp_path, "https://acme.snowflakecomputing.com")

    assert (settings.account, settings.database, settings.warehouse, settings.role) == (
        "acme", "SNOWFLAKE_DW", None, None)


@pytest.mark.usefixtures("credentials")
def test_an_unknown_snowflake_url_option_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown query parameter\(s\) schema, wh; expected "
                                          r"account, database, warehouse or role"):
        snowflake_settings(tmp_path, "https://acme.snowflakecomputing.com?wh=X&schema=Y")


@pytest.mark.usefixtures("credentials")
def test_each_warehouse_url_gives_its_sink(tmp_path: Path) -> None:
    snowflake = warehouse_sink("snowflake", tmp_path, "https://acme.snowflakecomputing.com")
    redshift = warehouse_sink("redshift", tmp_path, "postgresql://db.internal:6543/analytics")

    assert isinstance(snowflake, SnowflakeSink)
    assert snowflake.settings.host == "acme.snowflakecomputing.com"
    assert isinstance(redshift, RedshiftSink)
    assert redshift.location == "db.internal:6543/analytics (user loader)"
    assert redshift.statements.dialect == POSTGRES


@pytest.mark.parametrize(
    ("warehouse", "url", "expected"),
    [
        ("bigquery", "", r"warehouse 'bigquery': expected one of snowflake, redshift"),
        ("redshift", "mysql://h:1/db", r"expected redshift://host:5439/database"),
        ("redshift", "redshift://cluster:5439/", r"expected redshift://host:5439/database"),
        ("snowflake", "ftp://acme", r"expected https://<account>.snowflakecomputing.com"),
        ("redshift", "", r"no redshift_url configured and no local PostgreSQL stand-in"),
    ],
)
@pytest.mark.usefixtures("credentials")
def test_a_malformed_warehouse_is_refused_by_name(
    tmp_path: Path, warehouse: str, url: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        warehouse_sink(warehouse, tmp_path, url)
