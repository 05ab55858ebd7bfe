"""A lakehouse with the five real source stand-ins, advanced one generated day at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from medallion import compute
from medallion.devstack import stack
from medallion.generate import GeneratedData, GeneratorConfig, generate
from medallion.generate.load import LoadReport, load_day
from medallion.raw.landing import load_dir, raw_zone, read_manifest
from medallion.settings import repo_root


class SourceWorld:
    """A storage root whose stand-ins hold generated data up to the days advanced so far."""

    def __init__(self, root: Path, runs: Path, data: GeneratedData) -> None:
        self.root, self.runs, self.data = root, runs, data
        self.reports: dict[date, LoadReport] = {}
        self.outputs: list[str] = []  # every CLI run's stdout and stderr, for the secrets scan

    def day(self, index: int) -> date:
        """The generated business day ``index`` (0-based)."""
        return self.data.config.start_date + timedelta(days=index)

    def advance(self, day: date) -> LoadReport:
        """Make the source systems look as they would at the end of ``day``."""
        self.reports[day] = load_day(self.root, self.data, day)
        return self.reports[day]

    def medallion(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """The CLI as a user runs it, against this lakehouse."""
        runs = ["--runs-root", str(self.runs)] if args[0] == "jobs" else []
        result = subprocess.run(
            [sys.executable, "-m", "medallion", *args, "--bundle-root", str(repo_root()),
             "--var", f"storage_root={self.root}", *runs],
            capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, "COLUMNS": "200"},
        )
        self.outputs.append(result.stdout + result.stderr)
        return result

    def run_job(self, job: str, *params: str, only: tuple[str, ...] = ()
                ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        """Run a job with ``k=v`` parameters (``only`` these tasks, when given); the process
        result and the run's ``run.json``."""
        before = set((self.runs / job).glob("*/run.json"))
        arguments = [part for param in params for part in ("--param", param)]
        if only:
            arguments += ["--only", ",".join(only)]
        result = self.medallion("jobs", "run", job, "--max-parallel", "5", *arguments)
        new = set((self.runs / job).glob("*/run.json")) - before
        assert len(new) == 1, result.stdout + result.stderr
        return result, json.loads(new.pop().read_text())

    def raw_records(self, source: str, entity: str | None, day: date) -> list[dict[str, Any]]:
        """Every record of one complete raw load, in file order."""
        manifest = read_manifest(load_dir(raw_zone(self.root), source, entity, day))
        records = []
        for path in manifest.data_paths:
            with path.open(encoding="utf-8") as handle:
                records.extend(json.loads(line) for line in handle)
        return records


@pytest.fixture(scope="module")
def source_world(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
                 ) -> Iterator[SourceWorld]:
    """Generated data (scale from the module's ``WORLD_SCALE``, default 0.05) and five stand-ins.

    Nothing is loaded yet: tests advance the days they need. The stand-ins and the module's warm
    Spark server stop at module end.
    """
    scale = float(getattr(request.module, "WORLD_SCALE", 0.05))
    days = int(getattr(request.module, "WORLD_DAYS", 3))
    start = getattr(request.module, "WORLD_START", date(2026, 11, 2))
    base = tmp_path_factory.mktemp("world")
    root = base / "lakehouse"
    data = generate(GeneratorConfig(seed=42, scale=scale, days=days, start_date=start))
    stack.up(root)
    compute.pin_server(root)  # one warm Spark server for every build the module runs
    try:
        yield SourceWorld(root, base / "runs", data)
    finally:
        compute.unpin_server(root)
        stack.down(root)
