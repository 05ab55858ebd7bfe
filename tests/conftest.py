"""Shared fixtures: one Spark session for the whole suite."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from xdist.scheduler import LoadScopeScheduling

from medallion.lakehouse.spark import build_local_session
from medallion.lakehouse.storage import StorageRoot

os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


INTEGRATION = "tests/integration/"  # the modules that share one built world
# Modules whose module-scoped world is costly (a Spark cluster and its job runs, dlt-meta's
# onboarding): all their tests on one worker, so it is built once, not once per worker.
ONE_WORKER_MODULES = ("tests/platform/cluster/", "tests/lakehouse/dltmeta/", "tests/packaging/")


class IntegrationTogether(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no type hints
    """xdist's scheduling for ``make test`` (``-n 2``): every integration test on one worker, in
    file order, since they share one built world; every other test to whichever worker is free.

    The worker with the integration tests gets nothing else while more than two of them are left
    to run (LoadScopeScheduling's refill rule), so their world's job runs, which mostly wait on
    subprocesses and the warm server, overlap with the rest of the suite on the other worker.
    """

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(INTEGRATION):
            return "integration"
        if nodeid.startswith(ONE_WORKER_MODULES):
            return nodeid.split("::")[0]
        return nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> IntegrationTogether:
    return IntegrationTogether(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The integration tests first, so their long unit of work starts at once, not last."""
    first = [item for item in items if item.nodeid.startswith(INTEGRATION)]
    chosen = set(first)
    items[:] = first + [item for item in items if item not in chosen]


@pytest.fixture(scope="session")
def spark_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The storage root of the suite's shared Spark session."""
    return tmp_path_factory.mktemp("spark-root")


@pytest.fixture(scope="session")
def spark(spark_root: Path) -> SparkSession:
    """One Spark + Delta session for every test (starting one costs ~9 s)."""
    return build_local_session(StorageRoot(spark_root))
