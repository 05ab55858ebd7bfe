"""Where things live: repository paths and environment switches, resolved in one place."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # medallion/


def repo_root() -> Path:
    """The checkout this package was installed from (editable install), or the working directory."""
    candidate = PACKAGE_DIR.parent.parent
    if (candidate / "databricks.yml").exists():
        return candidate
    return Path.cwd()


def config_dir() -> Path:
    """Where the specs live (DQ specs, schema contracts); $MEDALLION_CONFIG_DIR overrides it.

    Package data, ``medallion/config``, found the same way in a checkout and in an installed
    wheel: in the repository it is a link to the top-level ``config/`` that people edit.
    """
    override = os.environ.get("MEDALLION_CONFIG_DIR")
    return Path(override) if override else (PACKAGE_DIR / "config").resolve()


def jars_dir() -> Path:
    """The folder `make jars` fills with the JVM jars Spark needs (Delta, later Kafka)."""
    override = os.environ.get("MEDALLION_JARS_DIR")
    return Path(override) if override else repo_root() / ".cache" / "jars"


def on_databricks() -> bool:
    """True inside a Databricks runtime (notebook, job or serverless)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ
