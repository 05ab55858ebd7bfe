"""Fixtures: the five stand-ins on one storage root, and days 1-2 of a small data set loaded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import kafka, postgres, snowflake
from medallion.platform.devstack.stack import HTTP_STAND_INS
from medallion.platform.generate import GeneratedData, GeneratorConfig, generate
from medallion.platform.generate.load import LoadReport, load_day, load_days

CONFIG = GeneratorConfig(seed=42, scale=0.1, days=3)
DAY_1 = CONFIG.start_date
DAY_2 = CONFIG.start_date + timedelta(days=1)


@dataclass(frozen=True)
class Loaded:
    """The storage root after loading days 1 and 2, the reports, and the re-load of day 2."""

    root: StorageRoot
    data: GeneratedData
    reports: list[LoadReport]
    reload: LoadReport
    seconds: float


@pytest.fixture(scope="module")
def stack_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageRoot]:
    """A storage root with every stand-in running; all stopped at teardown."""
    root = StorageRoot(tmp_path_factory.mktemp("generate-load-root"))
    started: list[str] = []
    try:
        for name in ("crm_api", "fx_api"):
            HTTP_STAND_INS[name].up(root)
            started.append(name)
        for module in (postgres, snowflake, kafka):
            module.up(root)
            started.append(module.NAME)
        yield root
    finally:
        for name in reversed(started):
            if name in HTTP_STAND_INS:
                HTTP_STAND_INS[name].down(root)
            else:
                {"postgres": postgres, "snowflake": snowflake, "kafka": kafka}[name].down(root)


@pytest.fixture(scope="module")
def data() -> GeneratedData:
    """Seed 42, scale 0.1, 3 days."""
    return generate(CONFIG)


@pytest.fixture(scope="module")
def loaded(stack_root: StorageRoot, data: GeneratedData) -> Loaded:
    """Days 1 and 2 loaded, then day 2 loaded once more."""
    began = time.monotonic()
    reports = load_days(stack_root, data, [DAY_1, DAY_2])
    seconds = time.monotonic() - began
    reload = load_day(stack_root, data, DAY_2)
    return Loaded(stack_root, data, reports, reload, seconds)
