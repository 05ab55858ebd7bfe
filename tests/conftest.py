"""Shared fixtures: one Spark session for the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medallion.spark import build_local_session


@pytest.fixture(scope="session")
def spark_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The storage root of the suite's shared Spark session."""
    return tmp_path_factory.mktemp("spark-root")


@pytest.fixture(scope="session")
def spark(spark_root: Path) -> Iterator[SparkSession]:
    """One Spark + Delta session for every test (starting one costs ~9 s)."""
    session = build_local_session(spark_root)
    yield session
