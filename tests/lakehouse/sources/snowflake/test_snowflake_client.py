"""The Snowflake client's URLs, on inline values (no server)."""

from __future__ import annotations

import pytest

from medallion.lakehouse.clients.snowflake import SnowflakeSettings, parse_url
from medallion.lakehouse.clients.urls import MalformedUrl

SECRET = "s3cret-Pa55"


def test_a_url_names_account_database_warehouse_and_role() -> None:
    settings = parse_url(
        "https://acme-eu1.snowflakecomputing.com?database=ANALYTICS_DB&warehouse=WH&role=R"
    )

    assert settings == SnowflakeSettings(
        host="acme-eu1.snowflakecomputing.com", port=443, account="acme-eu1", user="",
        password="", database="ANALYTICS_DB", schema="SALES", protocol="https", warehouse="WH",
        role="R",
    )  # fmt: skip


def test_the_stand_in_s_url_names_its_account_and_port() -> None:
    settings = parse_url("http://127.0.0.1:8085?account=fakesnow")

    assert (settings.protocol, settings.address, settings.account, settings.database) == (
        "http", "127.0.0.1:8085", "fakesnow", "SNOWFLAKE_DW")  # fmt: skip


def test_credentials_are_added_without_changing_where() -> None:
    settings = parse_url("https://acme.snowflakecomputing.com")

    signed_in = settings.with_credentials("publisher", SECRET)

    assert (signed_in.user, signed_in.password, signed_in.host) == (
        "publisher", SECRET, "acme.snowflakecomputing.com")  # fmt: skip
    assert SECRET not in repr(signed_in)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://acme", "expected https://<account>.snowflakecomputing.com, found scheme 'ftp'"),
        ("acme.snowflakecomputing.com", "found no scheme"),
        ("https://", "found no host"),
        ("https://acme.snowflakecomputing.com:https", "found an unreadable host or port"),
        ("https://acme.snowflakecomputing.com?wh=X&schema=Y",
         r"unknown query parameter\(s\) schema, wh; expected account, database, warehouse or role"),
    ],
)
def test_a_malformed_url_is_refused_naming_the_parameter_and_the_problem(
    url: str, problem: str
) -> None:
    with pytest.raises(MalformedUrl, match=rf"^snowflake_url='.*': .*{problem}"):
        parse_url(url)


def test_the_password_of_a_malformed_url_is_never_in_the_error() -> None:
    with pytest.raises(MalformedUrl) as raised:
        parse_url(f"ftp://publisher:{SECRET}@acme")

    assert SECRET not in str(raised.value)
    assert "publisher:***@acme" in str(raised.value)
