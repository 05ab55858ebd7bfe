"""Where a job runs, resolved once at the edge: the target, its storage, endpoints and secrets.

A notebook's first cells (or the CLI) turn the job's parameters into an ``Environment`` with
``Environment.resolve``, the one place that asks whether this is a Databricks runtime; the steps
then receive what they need from it (a URL, connection settings, the secret provider) and never
decide for themselves.

- ``local``: secrets from environment variables (``MEDALLION_<KEY>``), and secrets nobody has to
  know (``GENERATED_KEYS``) generated once per storage root. An empty endpoint is filled from the
  ``StandIns`` the local platform passes in (its running stand-ins, with their own credentials).
- ``databricks``: secrets from the workspace's secret scope; an empty endpoint stays empty, and
  the step that needs it fails naming the job parameter. Tables need a Unity Catalog catalog.

``MEDALLION_SECRETS=workspace`` reads the workspace's scope on the local target too.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from medallion.lakehouse.credentials import PROVIDER_ENV, SCOPE, SecretProvider
from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.settings import on_databricks
from medallion.lakehouse.storage import StorageRoot

Target = Literal["local", "databricks"]
LOCAL: Final = "local"
DATABRICKS: Final = "databricks"
ENDPOINT_NAMES = (
    "snowflake_url", "redshift_url", "crm_api_url", "fx_api_url", "kafka_bootstrap_servers",
)
WAREHOUSE_ENDPOINTS = {"snowflake": "snowflake_url", "redshift": "redshift_url"}
# A Unity Catalog catalog name as the bundle writes them.
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

__all__ = [
    "DATABRICKS", "ENDPOINT_NAMES", "LOCAL", "WAREHOUSE_ENDPOINTS", "Endpoints", "Environment",
    "StandIns", "Target", "get_secret", "resolve_target", "table_catalog",
]


def resolve_target() -> Target:
    """``databricks`` inside a Databricks runtime (notebook, job, serverless), else ``local``.

    The only place in the package that asks.
    """
    return DATABRICKS if on_databricks() else LOCAL


@dataclass(frozen=True)
class StandIns:
    """What the local platform's running stand-ins offer one storage root.

    ``endpoints``: endpoint name -> the running stand-in's address; ``credentials``: endpoint
    name -> the stand-in's own credentials (secret key -> value), used when its endpoint is;
    ``unavailable``: endpoint name -> the error that names the missing stand-in and how to start it.
    """

    endpoints: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoints:
    """Where the source systems and warehouses are (job parameters, or the local stand-ins').

    ``stand_ins`` names the endpoints filled from local stand-ins; ``unavailable`` says, for an
    empty one, why (the error ``require`` raises).
    """

    snowflake_url: str = ""
    redshift_url: str = ""
    crm_api_url: str = ""
    fx_api_url: str = ""
    kafka_bootstrap_servers: str = ""
    stand_ins: frozenset[str] = frozenset()
    unavailable: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_warehouse(cls, warehouse: str, url: str) -> Endpoints:
        """The endpoints with ``url`` as ``warehouse``'s (``snowflake`` or ``redshift``)."""
        if _warehouse_endpoint(warehouse) == "snowflake_url":
            return cls(snowflake_url=url)
        return cls(redshift_url=url)

    def require(self, name: str) -> str:
        """The endpoint ``name``; ``ConfigError`` naming the job parameter when it is empty."""
        value: str = getattr(self, _endpoint_name(name))
        if value:
            return value
        raise ConfigError(self.unavailable.get(name)
                          or f"no {name} configured: expected the job parameter {name}")

    def lineage_url(self, name: str) -> str:
        """The endpoint as lineage names its system: empty for a local stand-in, whose port
        changes from one start to the next while its datasets stay the same."""
        return "" if name in self.stand_ins else str(getattr(self, _endpoint_name(name)))

    def with_stand_ins(self, stand_ins: StandIns) -> Endpoints:
        """Each empty endpoint filled from ``stand_ins``, or marked unavailable with its reason."""
        empty = [name for name in ENDPOINT_NAMES if not getattr(self, name)]
        filled = {name: stand_ins.endpoints[name] for name in empty
                  if stand_ins.endpoints.get(name)}
        missing = {name: stand_ins.unavailable[name] for name in empty
                   if name not in filled and name in stand_ins.unavailable}
        return dataclasses.replace(self, **filled, stand_ins=frozenset(filled),
                                   unavailable={**self.unavailable, **missing})


def _endpoint_name(name: str) -> str:
    if name not in ENDPOINT_NAMES:
        raise ConfigError(f"endpoint {name!r}: expected one of {', '.join(ENDPOINT_NAMES)}")
    return name


def _warehouse_endpoint(warehouse: str) -> str:
    if warehouse not in WAREHOUSE_ENDPOINTS:
        raise ConfigError(
            f"warehouse {warehouse!r}: expected one of {', '.join(WAREHOUSE_ENDPOINTS)}"
        )
    return WAREHOUSE_ENDPOINTS[warehouse]


def table_catalog(target: Target, catalog: str | None) -> str | None:
    """The catalog tables live in: a Unity Catalog name, required on Databricks; None locally
    without one (tables by path under the storage root)."""
    catalog = catalog or None
    if catalog is not None and not _IDENTIFIER.match(catalog):
        raise ConfigError(
            f"catalog {catalog!r}: expected a Unity Catalog name in lower snake_case, "
            "e.g. 'medallion_dev'"
        )
    if target == DATABRICKS and catalog is None:
        raise ConfigError(
            "on Databricks the lakehouse needs a Unity Catalog catalog for its tables: "
            "expected the job parameter 'catalog' (the bundle's var.table_catalog), found none"
        )
    return catalog


@dataclass(frozen=True)
class Environment:
    """The resolved environment of a job's task: target, storage, catalog, endpoints, secrets."""

    target: Target
    storage_root: StorageRoot
    catalog: str | None
    endpoints: Endpoints
    secrets: SecretProvider

    @classmethod
    def resolve(
        cls,
        storage_root: StorageRoot,
        *,
        catalog: str = "",
        endpoints: Endpoints | None = None,
        stand_ins: StandIns | None = None,
        target: Target | None = None,
    ) -> Environment:
        """The environment from the job's parameters, on ``target`` (default: where this runs).

        ``stand_ins`` (the local platform's, ``medallion.platform.devstack.stack.local_stand_ins``)
        fill the empty endpoints on the local target, and their credentials come with them; they are
        not used on Databricks, where an empty endpoint fails at the step that needs it.
        """
        target = target or resolve_target()
        if target not in (LOCAL, DATABRICKS):
            raise ConfigError(f"target {target!r}: expected {LOCAL!r} or {DATABRICKS!r}")
        catalog_name = catalog or None
        if catalog_name is not None:
            table_catalog(target, catalog_name)  # a malformed name fails here, at the edge
        given = endpoints or Endpoints()
        if target == DATABRICKS:
            return cls(target, storage_root, catalog_name, given, SecretProvider(workspace=True))
        resolved = given.with_stand_ins(stand_ins or StandIns())
        return cls(target, storage_root, catalog_name, resolved,
                   _local_secrets(storage_root, resolved, stand_ins or StandIns()))

    def table_catalog(self) -> str | None:
        """The catalog of the lakehouse's tables (``ConfigError`` on Databricks without one)."""
        return table_catalog(self.target, self.catalog)


def _local_secrets(root: StorageRoot, endpoints: Endpoints, stand_ins: StandIns) -> SecretProvider:
    """The local target's provider: the stand-ins' own credentials for the endpoints they fill,
    then the environment (or the workspace, on request), then secrets generated under ``root``."""
    pinned = {key: value for name in sorted(endpoints.stand_ins)
              for key, value in stand_ins.credentials.get(name, {}).items()}
    return SecretProvider(workspace=_workspace_secrets_locally(), pinned=pinned,
                          generated_under=root)


def _workspace_secrets_locally() -> bool:
    """``$MEDALLION_SECRETS=workspace``: the workspace's secret scope off Databricks too."""
    return os.environ.get(PROVIDER_ENV) == "workspace"


def get_secret(
    key: str, *, scope: str = SCOPE, fallback: Callable[[], str | None] | None = None
) -> str | None:
    """``scope/key`` from the secret provider of the target this process runs on.

    For code without a resolved environment (the runner's alert channels, lineage's transport);
    a step takes ``Environment.secrets`` instead.
    """
    workspace = resolve_target() == DATABRICKS or _workspace_secrets_locally()
    return SecretProvider(workspace=workspace).get(key, scope=scope, fallback=fallback)
