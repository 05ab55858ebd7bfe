"""The Redshift client: connection settings, their URL, and one connection through either driver.

The ``redshift`` source, the Redshift sink and the local PostgreSQL 15 stand-in all connect here.
A URL names the database and, by its scheme, the driver:

- ``redshift://[user@]host[:5439]/database``: real Redshift, through ``redshift_connector``
  (imported when first needed: only a Redshift deployment installs it);
- ``postgresql://[user@]host[:5432]/database``: PostgreSQL (the stand-in), through psycopg 3,
  every session in UTC.

A password may sit in the URL (``user:password@``) but never leaves it: not in ``repr``, not in
an error, not in ``RedshiftSettings.url``. A failed connection names host:port/database and
user, with the driver's message and the password masked in it.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import psycopg

from medallion.lakehouse.clients.urls import MASK, MalformedUrl, redact_url
from medallion.lakehouse.errors import ConfigError, SourceUnavailable

SYSTEM = "redshift"
REDSHIFT = "redshift"
POSTGRESQL = "postgresql"
DEFAULT_PORTS = {REDSHIFT: 5439, POSTGRESQL: 5432}
URL_FORMS = "redshift://host:5439/database or postgresql://host:port/database"


class DriverMissing(ConfigError):
    """``redshift_connector`` is needed for real Redshift and is not installed."""


class ConnectFailed(SourceUnavailable):
    """One failed connection attempt; ``detail`` is the driver's message, the password masked."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class RedshiftSettings:
    """Where and as whom to connect; ``scheme`` picks the driver. No ``repr`` shows the password."""

    scheme: str  # REDSHIFT (redshift_connector) or POSTGRESQL (psycopg)
    host: str
    port: int
    database: str
    user: str = ""
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Refuse a scheme no driver serves."""
        if self.scheme not in DEFAULT_PORTS:
            raise ConfigError(
                f"{SYSTEM} settings: expected scheme {REDSHIFT!r} or {POSTGRESQL!r}, "
                f"found {self.scheme!r}"
            )

    @property
    def is_redshift(self) -> bool:
        """True for real Redshift (``redshift_connector``), False for PostgreSQL (psycopg)."""
        return self.scheme == REDSHIFT

    @property
    def location(self) -> str:
        """``host:port/database``, for messages."""
        return f"{self.host}:{self.port}/{self.database}"

    @property
    def location_with_user(self) -> str:
        """``host:port/database (user name)``, for messages."""
        return f"{self.location} (user {self.user})"

    @property
    def url(self) -> str:
        """``scheme://user@host:port/database``: the URL ``parse_url`` reads, without password."""
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}/{self.database}"

    def with_credentials(self, user: str, password: str | None) -> RedshiftSettings:
        """The same database, as ``user``."""
        return dataclasses.replace(self, user=user, password=password)


def parse_url(url: str, *, parameter: str = "redshift_url") -> RedshiftSettings:
    """The settings a ``redshift://`` or ``postgresql://`` URL names (see the module docstring).

    The port defaults to the scheme's (5439, 5432); user and password are the URL's, if any.
    ``MalformedUrl`` names ``parameter``, the URL (password masked) and the part it lacks.
    """

    def malformed(found: str) -> MalformedUrl:
        return MalformedUrl(f"{parameter}={redact_url(url)!r}: expected {URL_FORMS}, found {found}")

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # its message may quote a piece of the password: not shown
        raise malformed("an unreadable host or port") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise malformed(f"scheme {parts.scheme!r}" if parts.scheme else "no scheme")
    if not parts.hostname:
        raise malformed("no host")
    database = parts.path.lstrip("/")
    if not database:
        raise malformed("no database")
    return RedshiftSettings(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        database=database,
        user=unquote(parts.username or ""),
        password=None if parts.password is None else unquote(parts.password),
    )


def connect_postgres(settings: RedshiftSettings, *, connect_timeout: int = 5) -> psycopg.Connection:
    """One psycopg connection in a UTC session; ``ConnectFailed`` when the server refuses it."""
    try:
        return psycopg.connect(
            host=settings.host,
            port=settings.port,
            dbname=settings.database,
            user=settings.user,
            password=settings.password,
            connect_timeout=connect_timeout,
            options="-c TimeZone=UTC",
        )
    except psycopg.OperationalError as error:
        raise _connect_failed(settings, error) from None


def import_redshift_connector() -> ModuleType:
    """The ``redshift_connector`` module; ``DriverMissing`` saying how to install it."""
    try:
        return importlib.import_module("redshift_connector")
    except ImportError:
        raise DriverMissing(
            "Redshift: expected the `redshift_connector` package, found it missing; install it "
            "with `pip install redshift_connector` (the local PostgreSQL stand-in uses psycopg "
            "and does not need it)"
        ) from None


def connect_redshift(settings: RedshiftSettings, **options: Any) -> Any:
    """One ``redshift_connector`` connection (``options`` go to its ``connect``, e.g. IAM or
    SSL settings); ``ConnectFailed`` when the cluster refuses it, ``DriverMissing``."""
    connector = import_redshift_connector()
    try:
        return connector.connect(
            host=settings.host,
            port=settings.port,
            database=settings.database,
            user=settings.user,
            password=settings.password,
            **options,
        )
    except (connector.Error, OSError) as error:
        raise _connect_failed(settings, error) from None


def _connect_failed(settings: RedshiftSettings, error: BaseException) -> ConnectFailed:
    """``ConnectFailed`` naming where and as whom, the driver's message without the password."""
    detail = str(error)
    if settings.password:  # drivers do not echo it, but never rely on that
        detail = detail.replace(settings.password, MASK)
    detail = detail.strip()
    return ConnectFailed(
        f"source {SYSTEM!r} at {settings.location_with_user}: cannot connect; "
        f"last error: {detail}",
        detail,
    )
