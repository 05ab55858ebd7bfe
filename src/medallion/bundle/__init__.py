"""Databricks Asset Bundle loading and offline validation (databricks.yml + included files)."""

from __future__ import annotations

from medallion.bundle.issues import BundleInvalidError, BundleIssue
from medallion.bundle.loader import load_bundle, select_target
from medallion.bundle.model import Bundle, SourcePosition
from medallion.bundle.schema import find_schema
from medallion.bundle.validate import check_bundle, validate_bundle

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
