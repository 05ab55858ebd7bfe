"""Shared fixtures: one Spark session for the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medallion.spark import build_local_session

os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


@pytest.fixture(scope="session")
def spark_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The storage root of the suite's shared Spark session."""
    return tmp_path_factory.mktemp("spark-root")


@pytest.fixture(scope="session")
def spark(spark_root: Path) -> SparkSession:
    """One Spark + Delta session for every test (starting one costs ~9 s)."""
    return build_local_session(spark_root)
