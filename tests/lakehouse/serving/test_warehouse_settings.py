"""Where a publish goes: warehouse URLs (job parameters) into sinks and connection settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from medallion.lakehouse.clients.snowflake import SnowflakeSettings
from medallion.lakehouse.environment import LOCAL, Endpoints, Environment, StandIns
from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.pipelines.ingest import snowflake_settings
from medallion.lakehouse.pipelines.publish import warehouse_sink
from medallion.lakehouse.serving.redshift import RedshiftSink
from medallion.lakehouse.serving.redshift_sql import POSTGRES
from medallion.lakehouse.serving.snowflake import SnowflakeSink
from medallion.lakehouse.storage import StorageRoot


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret scope's warehouse credentials, as the local provider reads them."""
    monkeypatch.setenv("MEDALLION_SNOWFLAKE_USER", "publisher")
    monkeypatch.setenv("MEDALLION_SNOWFLAKE_PASSWORD", "sf-secret-1")
    monkeypatch.setenv("MEDALLION_REDSHIFT_USER", "loader")
    monkeypatch.setenv("MEDALLION_REDSHIFT_PASSWORD", "rs-secret-2")


def local(root: Path, endpoints: Endpoints, stand_ins: StandIns | None = None) -> Environment:
    """The local target's environment with these endpoints."""
    return Environment.resolve(
        StorageRoot(root), endpoints=endpoints, stand_ins=stand_ins, target=LOCAL
    )


def snowflake_at(root: Path, url: str) -> Environment:
    return local(root, Endpoints(snowflake_url=url))


@pytest.mark.usefixtures("credentials")
def test_a_snowflake_url_names_account_database_warehouse_and_role(tmp_path: Path) -> None:
    url = ("https://acme-eu1.snowflakecomputing.com"
           "?database=ANALYTICS_DB&warehouse=PUBLISH_WH&role=PUBLISHER")

    settings = snowflake_settings(snowflake_at(tmp_path, url))

    assert settings == SnowflakeSettings(
        host="acme-eu1.snowflakecomputing.com", port=443, account="acme-eu1",
        user="publisher", password="sf-secret-1", database="ANALYTICS_DB", schema="SALES",
        protocol="https", warehouse="PUBLISH_WH", role="PUBLISHER",
    )
    assert "sf-secret-1" not in repr(settings)


@pytest.mark.usefixtures("credentials")
def test_a_snowflake_url_without_options_takes_the_defaults(tmp_path: Path) -> None:
    settings = snowflake_settings(snowflake_at(tmp_path, "https://acme.snowflakecomputing.com"))

    assert (settings.account, settings.database, settings.warehouse, settings.role) == (
        "acme", "SNOWFLAKE_DW", None, None)


@pytest.mark.usefixtures("credentials")
def test_an_unknown_snowflake_url_option_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown query parameter\(s\) schema, wh; expected "
                                          r"account, database, warehouse or role"):
        snowflake_settings(snowflake_at(tmp_path, "https://acme.snowflakecomputing.com?wh=X&schema=Y"))


@pytest.mark.usefixtures("credentials")
def test_each_warehouse_url_gives_its_sink(tmp_path: Path) -> None:
    endpoints = Endpoints(snowflake_url="https://acme.snowflakecomputing.com",
                          redshift_url="postgresql://db.internal:6543/analytics")
    snowflake = warehouse_sink("snowflake", local(tmp_path, endpoints))
    redshift = warehouse_sink("redshift", local(tmp_path, endpoints))

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
        ("redshift", "", r"no redshift_url configured: expected the job parameter redshift_url"),
    ],
)
@pytest.mark.usefixtures("credentials")
def test_a_malformed_warehouse_is_refused_by_name(
    tmp_path: Path, warehouse: str, url: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        warehouse_sink(warehouse, local(tmp_path, Endpoints(snowflake_url=url, redshift_url=url)))


@pytest.mark.usefixtures("credentials")
def test_an_unknown_warehouse_has_no_endpoint() -> None:
    with pytest.raises(ConfigError, match=r"warehouse 'bigquery': expected one of snowflake, "):
        Endpoints.for_warehouse("bigquery", "")


@pytest.mark.usefixtures("credentials")
def test_the_local_stand_in_serves_an_empty_warehouse_url_as_its_own_role(
    tmp_path: Path,
) -> None:
    stand_ins = StandIns(
        endpoints={"redshift_url": "postgresql://127.0.0.1:55432/redshift_analytics"},
        credentials={"redshift_url": {"redshift-user": "medallion",
                                      "redshift-password": "pg-secret"}},
    )

    sink = warehouse_sink("redshift", local(tmp_path, Endpoints(), stand_ins))

    assert isinstance(sink, RedshiftSink)
    assert sink.location == "127.0.0.1:55432/redshift_analytics (user medallion)"
