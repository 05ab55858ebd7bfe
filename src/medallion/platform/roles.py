"""The roles the bundle declares: its ``resources.schemas`` grants, read into ``Roles``.

The lakehouse's access layer (``medallion.lakehouse.governance``) enforces them locally and asks
for them through the entry point ``medallion.roles``, which names ``declared_roles`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.governance import Roles, SchemaGrant
from medallion.lakehouse.settings import repo_root
from medallion.platform.bundle import Bundle, load_bundle


def _text(value: Any, where: str) -> str:
    """A non-empty string from the bundle, or a ConfigError naming where it should be."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, found {value!r}")
    return value


def _where(bundle: Bundle, path: str) -> str:
    """``file:line: yaml.path`` of a value of the resolved bundle."""
    position = bundle.locate(path)
    return f"{position.file}:{position.line}: {position.yaml_path}"


def roles_from_bundle(bundle: Bundle) -> Roles:
    """The grants of ``resources.schemas`` of a loaded bundle, in declaration order."""
    schemas = (bundle.config.get("resources") or {}).get("schemas") or {}
    grants: list[SchemaGrant] = []
    for key, spec in schemas.items() if isinstance(schemas, Mapping) else ():
        path = f"resources.schemas.{key}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{_where(bundle, path)}: a schema resource is a mapping")
        catalog = _text(spec.get("catalog_name"), _where(bundle, f"{path}.catalog_name"))
        schema = _text(spec.get("name"), _where(bundle, f"{path}.name"))
        for index, grant in enumerate(spec.get("grants") or []):
            where = _where(bundle, f"{path}.grants[{index}]")
            if not isinstance(grant, Mapping):
                raise ConfigError(f"{where}: a grant is a mapping of principal and privileges")
            privileges = grant.get("privileges") or []
            if not isinstance(privileges, list):
                raise ConfigError(f"{where}.privileges: expected a list, found {privileges!r}")
            grants.append(
                SchemaGrant(
                    catalog=catalog,
                    schema=schema,
                    principal=_text(grant.get("principal"), f"{where}.principal"),
                    privileges=tuple(_text(p, f"{where}.privileges") for p in privileges),
                )
            )
    return Roles(tuple(grants))


def declared_roles(bundle_root: Path | None = None, target: str | None = None) -> Roles:
    """The roles of the bundle at ``bundle_root`` (default: this checkout) for a target."""
    return roles_from_bundle(load_bundle(bundle_root or repo_root(), target))
