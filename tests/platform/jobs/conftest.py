"""Fixtures for runner tests: the fixture bundle and a way to run its jobs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medallion.platform.bundle import load_bundle
from medallion.platform.jobs import JobRunResult, RunOptions, run_job
from medallion.platform.jobs.model import parse_job

FIXTURE_BUNDLE = Path(__file__).parent / "fixture_bundle"


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    """Where fixture notebooks record that they ran."""
    return tmp_path / "markers"


@pytest.fixture
def sleeps() -> list[float]:
    """Retry waits the runner asked for (recorded instead of slept)."""
    return []


RunFixture = Callable[..., JobRunResult]


@pytest.fixture
def run_fixture_job(tmp_path: Path, marker_dir: Path, sleeps: list[float]) -> RunFixture:
    """Run a job of the fixture bundle, cold compute (the notebooks do not use Spark)."""

    def run(job_key: str, **params: str) -> JobRunResult:
        bundle = load_bundle(FIXTURE_BUNDLE)
        jobs = {key: parse_job(key, raw) for key, raw in bundle.jobs.items()}
        options = RunOptions(runs_root=tmp_path / "runs", compute="cold", kernel_pool=1,
                             sleep=sleeps.append, jobs=jobs)
        return run_job(jobs[job_key], {"marker_dir": str(marker_dir), **params}, options)

    return run


def markers(marker_dir: Path) -> dict[str, dict[str, Any]]:
    """What each ``record`` notebook wrote, by label."""
    return {path.stem: json.loads(path.read_text()) for path in marker_dir.glob("*.json")}
