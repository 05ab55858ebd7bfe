"""The Snowflake client: connection settings, their URL, and connecting with retries.

The ``snowflake`` source, the Snowflake sink and the local fakesnow stand-in all connect here,
through snowflake-connector-python. A URL names the account's endpoint and, optionally, where
queries run: ``https://<account>.snowflakecomputing.com[?database=…&warehouse=…&role=…&account=…]``
(the account defaults to the host's first label); the stand-in's is
``http://127.0.0.1:<port>?account=fakesnow``. Credentials come from elsewhere (the secret scope,
the environment): no ``repr`` and no error shows the password.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

import snowflake.connector
from snowflake.connector import SnowflakeConnection
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt

from medallion.lakehouse.clients.urls import MASK, MalformedUrl, redact_url
from medallion.lakehouse.errors import ConfigError, MedallionError, SourceUnavailable
from medallion.lakehouse.sources.http import backoff

__all__ = [
    "DATABASE",
    "PASSWORD_ENV",
    "SCHEMA",
    "USER_ENV",
    "SnowflakeConnection",
    "SnowflakeSettings",
    "connect_to",
    "parse_url",
    "settings_from_env",
]

SYSTEM = "snowflake"
DATABASE = "SNOWFLAKE_DW"  # the source DW's database: the default of every connection
SCHEMA = "SALES"
DEFAULT_PORT = 443
URL_OPTIONS = ("account", "database", "warehouse", "role")
USER_ENV = "MEDALLION_SNOWFLAKE_USER"
PASSWORD_ENV = "MEDALLION_SNOWFLAKE_PASSWORD"  # noqa: S105 (a variable name)
# Harmless defaults: the local stand-in accepts any credentials.
DEFAULT_USER = "medallion"
DEFAULT_PASSWORD = "medallion-local"  # noqa: S105 (the stand-in ignores it)


@dataclass(frozen=True)
class SnowflakeSettings:
    """Where and as whom to connect; the password never appears in ``repr``."""

    host: str
    port: int
    account: str
    user: str
    password: str = field(repr=False)
    database: str = DATABASE
    schema: str = SCHEMA
    protocol: str = "https"
    warehouse: str | None = None  # the virtual warehouse a real account runs queries on
    role: str | None = None  # None: the user's default role

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    def with_credentials(self, user: str, password: str) -> SnowflakeSettings:
        """The same account and database, as ``user``."""
        return dataclasses.replace(self, user=user, password=password)


def parse_url(url: str, *, parameter: str = "snowflake_url") -> SnowflakeSettings:
    """The settings a Snowflake URL names (see the module docstring).

    The port defaults to 443 and the database to ``SNOWFLAKE_DW``; user and password are the
    URL's, if any (empty otherwise: add them with ``with_credentials``). ``MalformedUrl`` names
    ``parameter``, the URL (password masked) and what is wrong with it.
    """

    def malformed(problem: str) -> MalformedUrl:
        return MalformedUrl(f"{parameter}={redact_url(url)!r}: {problem}")

    expected = "expected https://<account>.snowflakecomputing.com, found"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # its message may quote a piece of the password: not shown
        raise malformed(f"{expected} an unreadable host or port") from None
    if parts.scheme not in {"http", "https"}:
        raise malformed(f"{expected} scheme {parts.scheme!r}" if parts.scheme
                        else f"{expected} no scheme")
    if not parts.hostname:
        raise malformed(f"{expected} no host")
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - set(URL_OPTIONS))
    if unknown:
        raise malformed(
            f"unknown query parameter(s) {', '.join(unknown)}; expected account, database, "
            "warehouse or role"
        )
    return SnowflakeSettings(
        host=parts.hostname,
        port=port or DEFAULT_PORT,
        account=query.get("account", parts.hostname.split(".")[0]),
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        protocol=parts.scheme,
        database=query.get("database", DATABASE),
        warehouse=query.get("warehouse"),
        role=query.get("role"),
    )


def settings_from_env(
    *,
    host: str,
    port: int,
    account: str = "fakesnow",
    database: str = DATABASE,
    schema: str = SCHEMA,
    protocol: str = "https",
) -> SnowflakeSettings:
    """Settings with user/password from ``MEDALLION_SNOWFLAKE_USER``/``_PASSWORD`` (or defaults)."""
    return SnowflakeSettings(
        host=host,
        port=port,
        account=account,
        user=os.environ.get(USER_ENV, DEFAULT_USER),
        password=os.environ.get(PASSWORD_ENV, DEFAULT_PASSWORD),
        database=database,
        schema=schema,
        protocol=protocol,
    )


def connect_to(
    settings: SnowflakeSettings,
    *,
    attempts: int = 3,
    initial_wait_seconds: float = 0.5,
    max_wait_seconds: float = 5.0,
    login_timeout_seconds: int = 10,
    network_timeout_seconds: int | None = 10,
    unavailable: Callable[[str], MedallionError] | None = None,
) -> SnowflakeConnection:
    """Connect with retries and backoff.

    ``network_timeout_seconds`` bounds every request of the connection (None: no bound, for
    long-running statements). After the last attempt, raises ``unavailable(detail)`` (by
    default ``SourceUnavailable`` naming the source), ``detail`` being the last error with the
    password masked.
    """
    if attempts < 1:
        raise ConfigError(f"attempts={attempts}: expected at least 1")

    def attempt() -> SnowflakeConnection:
        return snowflake.connector.connect(
            user=settings.user,
            password=settings.password,
            account=settings.account,
            host=settings.host,
            port=settings.port,
            protocol=settings.protocol,
            database=settings.database,
            schema=settings.schema,
            warehouse=settings.warehouse,
            role=settings.role,
            login_timeout=login_timeout_seconds,
            network_timeout=network_timeout_seconds,
            session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        )

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=backoff(initial_wait_seconds, max_wait_seconds),
        retry=retry_if_exception_type(snowflake.connector.errors.Error),
    )
    try:
        return retrying(attempt)
    except RetryError as error:
        last = error.last_attempt.exception()
        detail = f"{type(last).__name__}: {last}"
        if settings.password:
            detail = detail.replace(settings.password, MASK)
        if unavailable is not None:
            raise unavailable(detail) from None
        raise SourceUnavailable(
            f"source {SYSTEM!r} unavailable at {settings.address} (account {settings.account!r}, "
            f"user {settings.user!r}) after {attempts} attempts; last error: {detail}"
        ) from None
