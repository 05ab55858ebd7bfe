"""Shared fixtures: one Spark session for the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medallion.spark import build_local_session

os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The integration tests first and together, as one xdist group.

    ``make test`` runs two workers (``-n 2 --dist loadgroup``): one takes the integration
    package, whose shared world and whole-job runs wait on subprocesses and the warm server most
    of the time, while the other works through every other test beside it. Started first, the
    long group never leaves one worker idle at the end. Within the group the file order holds.
    """
    integration = [item for item in items if item.get_closest_marker("integration")]
    for item in integration:
        item.add_marker(pytest.mark.xdist_group("integration"))
    grouped = set(integration)
    items[:] = integration + [item for item in items if item not in grouped]


@pytest.fixture(scope="session")
def spark_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The storage root of the suite's shared Spark session."""
    return tmp_path_factory.mktemp("spark-root")


@pytest.fixture(scope="session")
def spark(spark_root: Path) -> SparkSession:
    """One Spark + Delta session for every test (starting one costs ~9 s)."""
    return build_local_session(spark_root)
