"""The Redshift client's settings and URLs, on inline values (no database)."""

from __future__ import annotations

import pytest

from medallion.lakehouse.clients.redshift import (
    POSTGRESQL,
    REDSHIFT,
    ConnectFailed,
    RedshiftSettings,
    connect_postgres,
    parse_url,
)
from medallion.lakehouse.clients.urls import MalformedUrl, redact_url
from medallion.lakehouse.errors import ConfigError, SourceUnavailable
from tests.lakehouse.sources.redshift.conftest import closed_port

SECRET = "s3cret-Pa55"


def test_a_url_names_driver_host_port_database_and_credentials() -> None:
    settings = parse_url(f"postgresql://loader:{SECRET}@db.internal:6543/analytics")

    assert settings == RedshiftSettings(
        POSTGRESQL, "db.internal", 6543, "analytics", user="loader", password=SECRET
    )
    assert not settings.is_redshift
    assert settings.location_with_user == "db.internal:6543/analytics (user loader)"


@pytest.mark.parametrize(
    ("url", "scheme", "port"),
    [
        ("redshift://cluster.example.com/dev", REDSHIFT, 5439),
        ("postgresql://h/dev", POSTGRESQL, 5432),
    ],
)
def test_the_port_defaults_to_the_scheme_s_own(url: str, scheme: str, port: int) -> None:
    settings = parse_url(url)

    assert (settings.scheme, settings.port, settings.user, settings.password) == (
        scheme, port, "", None)  # fmt: skip


def test_escaped_credentials_are_read_unescaped() -> None:
    settings = parse_url("redshift://lo%40der:p%2F%40ss@cluster.example.com:5439/dev")

    assert (settings.user, settings.password) == ("lo@der", "p/@ss")


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("mysql://h:1/db", "found scheme 'mysql'"),
        ("//h:5432/db", "found no scheme"),
        ("postgresql:///db", "found no host"),
        ("redshift://cluster:5439/", "found no database"),
        ("postgresql://h:port/db", "found an unreadable host or port"),
    ],
)
def test_a_url_missing_a_part_is_refused_naming_it(url: str, found: str) -> None:
    with pytest.raises(MalformedUrl, match=f"expected redshift://host:5439/database or "
                                           f"postgresql://host:port/database, {found}"):
        parse_url(url, parameter="warehouse_url")


def test_a_malformed_url_is_a_config_error_naming_the_parameter() -> None:
    with pytest.raises(ConfigError, match=r"^warehouse_url='mysql://h:1/db': "):
        parse_url("mysql://h:1/db", parameter="warehouse_url")


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://loader:{SECRET}@h/db",
        f"postgresql://loader:{SECRET}@h:5432/",
        f"postgresql://loader:{SECRET}/x@h/db",  # an unescaped "/" makes the port unreadable
    ],
)
def test_the_password_of_a_malformed_url_is_never_in_the_error(url: str) -> None:
    with pytest.raises(MalformedUrl) as raised:
        parse_url(url)

    assert SECRET not in str(raised.value)
    assert "loader:***@h" in str(raised.value)


def test_the_password_is_in_no_repr_str_or_url() -> None:
    settings = parse_url(f"postgresql://loader:{SECRET}@db.internal:6543/analytics")

    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert settings.url == "postgresql://loader@db.internal:6543/analytics"


def test_the_url_of_settings_reads_back_as_the_same_settings_without_password() -> None:
    settings = RedshiftSettings(REDSHIFT, "cluster.example.com", 5439, "dev", "lo@der", SECRET)

    assert parse_url(settings.url) == settings.with_credentials("lo@der", None)


def test_a_scheme_no_driver_serves_is_refused() -> None:
    with pytest.raises(ConfigError, match="scheme 'redshift' or 'postgresql', found 'mysql'"):
        RedshiftSettings("mysql", "h", 3306, "db")


def test_a_url_without_a_password_is_shown_as_it_is() -> None:
    assert redact_url("postgresql://loader@h:5432/db") == "postgresql://loader@h:5432/db"


def test_a_refused_connection_names_where_and_who_but_never_the_password() -> None:
    port = closed_port()
    settings = RedshiftSettings(POSTGRESQL, "127.0.0.1", port, "analytics", "loader", SECRET)

    with pytest.raises(ConnectFailed) as raised:
        connect_postgres(settings, connect_timeout=2)

    assert isinstance(raised.value, SourceUnavailable)
    assert f"at 127.0.0.1:{port}/analytics (user loader): cannot connect" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert raised.value.detail in str(raised.value)
