"""Roles: which schemas each role may read, declared once as grants in ``bundles/roles.yml``.

The bundle declares the three schemas as ``resources.schemas`` with Unity Catalog ``grants``; on
Databricks the deployment applies them and Unity Catalog enforces them. Locally this module is
the access layer: ``Lakehouse.read`` and ``medallion sql --role`` ask ``Roles.check_read`` before
reading. A role may read a schema when it holds both ``USE_SCHEMA`` and ``SELECT`` on it, as in
Unity Catalog (plus ``USE CATALOG`` on the catalog, which ``grant_statements`` adds). The local
platform reads the grants out of the bundle (``medallion.platform.roles``).
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from importlib.metadata import entry_points

from medallion.lakehouse.errors import AccessDenied, ConfigError

ROLE_ENV = "MEDALLION_ROLE"
ROLES_ENTRY_POINT = "medallion.roles"
READ_PRIVILEGES = frozenset({"USE_SCHEMA", "SELECT"})
DEFAULT_SCHEMA = "default"  # where Spark resolves an unqualified table name
_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SchemaGrant:
    """One grant of the bundle: ``privileges`` on schema ``catalog.schema`` to ``principal``."""

    catalog: str
    schema: str
    principal: str
    privileges: tuple[str, ...]


@dataclass(frozen=True)
class Roles:
    """The roles the bundle declares (its grants' principals) and the schemas each may read."""

    grants: tuple[SchemaGrant, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Every role, in the order the bundle first grants it something."""
        return tuple(dict.fromkeys(grant.principal for grant in self.grants))

    def readable(self, role: str) -> tuple[str, ...]:
        """The schemas ``role`` may read, in declaration order; ConfigError for an unknown role."""
        if role not in self.names:
            known = ", ".join(self.names) or "none (declare grants in bundles/roles.yml)"
            close = difflib.get_close_matches(role, self.names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown role {role!r}{hint} (known roles: {known})")
        held: dict[str, set[str]] = {}
        for grant in self.grants:
            if grant.principal == role:
                held.setdefault(grant.schema, set()).update(grant.privileges)
        return tuple(schema for schema, privileges in held.items() if privileges >= READ_PRIVILEGES)

    def check_read(self, role: str, table: str) -> None:
        """Raise AccessDenied unless ``role`` may read ``table`` (``[catalog.]schema.name``).

        A bare name is in schema ``default``, as Spark resolves it.
        """
        qualifier = table.rpartition(".")[0]
        schema = qualifier.rsplit(".", 1)[-1].lower() if qualifier else DEFAULT_SCHEMA
        readable = self.readable(role)
        if schema not in readable:
            shown = table if "." in table else f"{table} (schema {DEFAULT_SCHEMA})"
            raise AccessDenied(
                f"role {role!r} may not read {shown}: it may read schemas "
                f"{', '.join(readable) or 'none'} (grants in bundles/roles.yml)"
            )

    def deny_path_read(self, role: str, reference: str) -> None:
        """Raise AccessDenied: a read by path or table function bypasses the catalog's grants."""
        readable = self.readable(role)
        raise AccessDenied(
            f"role {role!r} may not read {reference}: a read by path or table function bypasses "
            f"the catalog's grants, so no role may; read a table by name (it may read schemas "
            f"{', '.join(readable) or 'none'})"
        )

    def grant_statements(self) -> list[str]:
        """Unity Catalog SQL for these grants: USE CATALOG once per role and catalog, then each."""
        catalog_grants = dict.fromkeys((grant.catalog, grant.principal) for grant in self.grants)
        statements = [
            f"GRANT USE CATALOG ON CATALOG {_quote(catalog)} TO {_principal(principal)}"
            for catalog, principal in catalog_grants
        ]
        statements += [
            f"GRANT {', '.join(p.replace('_', ' ') for p in grant.privileges)} ON SCHEMA "
            f"{_quote(grant.catalog)}.{_quote(grant.schema)} TO {_principal(grant.principal)}"
            for grant in self.grants
        ]
        return statements


def _quote(identifier: str) -> str:
    """An identifier as SQL: bare when plain, else back-quoted."""
    if _PLAIN_IDENTIFIER.match(identifier):
        return identifier
    return "`" + identifier.replace("`", "``") + "`"


def _principal(principal: str) -> str:
    """A principal as SQL: always back-quoted (groups and e-mail addresses)."""
    return "`" + principal.replace("`", "``") + "`"


def declared_roles() -> Roles:
    """The roles declared for this checkout, from the installed local platform.

    Locally this module enforces the bundle's grants, which the platform reads (the entry point
    ``medallion.roles``: ``medallion.platform.roles.declared_roles``), so this half never
    imports the platform. On Databricks Unity Catalog enforces them and nothing asks.
    """
    providers = entry_points(group=ROLES_ENTRY_POINT)
    if not providers:
        raise ConfigError(
            f"role enforcement needs the declared roles: expected the local platform's "
            f"{ROLES_ENTRY_POINT!r} entry point (install medallion-lakehouse[local]), found none"
        )
    roles: Roles = next(iter(providers)).load()()
    return roles


def role_from_environment() -> str | None:
    """The role a notebook reads as: ``$MEDALLION_ROLE``, or None (no enforcement)."""
    return os.environ.get(ROLE_ENV) or None
