"""Databricks Asset Bundle loading and offline validation (databricks.yml + included files).

The names below load on first use: ``medallion.bundle.issues`` and ``yaml_positions`` (the
issue vocabulary and YAML positions the table specs' loader shares) must import on a cluster,
where the bundle tooling's own dependencies (``databricks-bundles``) are not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medallion.bundle.issues import BundleInvalidError, BundleIssue
    from medallion.bundle.loader import load_bundle, select_target
    from medallion.bundle.model import Bundle, SourcePosition
    from medallion.bundle.schema import find_schema
    from medallion.bundle.validate import check_bundle, validate_bundle

_WHERE = {
    "Bundle": "model",
    "BundleInvalidError": "issues",
    "BundleIssue": "issues",
    "SourcePosition": "model",
    "check_bundle": "validate",
    "find_schema": "schema",
    "load_bundle": "loader",
    "select_target": "loader",
    "validate_bundle": "validate",
}

__all__ = [
    "Bundle",
    "BundleInvalidError",
    "BundleIssue",
    "SourcePosition",
    "check_bundle",
    "find_schema",
    "load_bundle",
    "select_target",
    "validate_bundle",
]


def __getattr__(name: str) -> Any:
    """``name`` from the submodule that defines it, imported now."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
