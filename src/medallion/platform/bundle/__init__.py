"""Databricks Asset Bundle loading and offline validation (databricks.yml + included files).

The names below load on first use, so that a command that needs none of them does not import
the bundle tooling's dependencies (``databricks-bundles``). The issue vocabulary and YAML
positions it shares with the table specs' loader live in the lakehouse half
(``medallion.lakehouse.issues``, ``medallion.lakehouse.yaml_positions``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medallion.lakehouse.issues import BundleInvalidError, BundleIssue
    from medallion.platform.bundle.loader import load_bundle, select_target
    from medallion.platform.bundle.model import Bundle, SourcePosition
    from medallion.platform.bundle.schema import find_schema
    from medallion.platform.bundle.validate import check_bundle, validate_bundle

_WHERE = {
    "Bundle": f"{__name__}.model",
    "BundleInvalidError": "medallion.lakehouse.issues",
    "BundleIssue": "medallion.lakehouse.issues",
    "SourcePosition": f"{__name__}.model",
    "check_bundle": f"{__name__}.validate",
    "find_schema": f"{__name__}.schema",
    "load_bundle": f"{__name__}.loader",
    "select_target": f"{__name__}.loader",
    "validate_bundle": f"{__name__}.validate",
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
    return getattr(importlib.import_module(_WHERE[name]), name)
