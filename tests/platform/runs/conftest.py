"""One run of the run-records fixture job, shared by the tests of this folder (kernels are slow)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medallion.platform.bundle import load_bundle
from medallion.platform.jobs import JobRunResult, RunOptions, run_job
from medallion.platform.jobs.model import parse_job
from medallion.platform.runs.recorder import RunRecorder

FIXTURE_BUNDLE = Path(__file__).parent / "fixture_bundle"
SCHEMA_PATH = Path(__file__).parents[3] / "config" / "schemas" / "run_summary.schema.json"
CRM_TOKEN = "crm-tok-7f3a9c1e5b"  # the secrets provider's value, from the environment
PARAM_SECRET = "param-secret-4d2e8b"  # a secret-named job parameter's value


@dataclass(frozen=True)
class RecordedRun:
    """A finished fixture run, its recorder and where its records went."""

    result: JobRunResult
    recorder: RunRecorder
    storage_root: Path

    @property
    def summary_path(self) -> Path:
        """The run's summary file."""
        return self.recorder.summaries[self.result.run_id]

    @property
    def summary(self) -> dict[str, Any]:
        """The run's summary, parsed."""
        loaded: dict[str, Any] = json.loads(self.summary_path.read_text(encoding="utf-8"))
        return loaded


@pytest.fixture(scope="session")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedRun]:
    """``records_job``: load succeeds, flaky succeeds on its second attempt, leaks fails with
    the CRM token in its message, after_leak is skipped."""
    base = tmp_path_factory.mktemp("records")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDALLION_CRM_TOKEN", CRM_TOKEN)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        bundle = load_bundle(FIXTURE_BUNDLE)
        jobs = {key: parse_job(key, raw) for key, raw in bundle.jobs.items()}
        recorder = RunRecorder.for_bundle(bundle)
        options = RunOptions(runs_root=base / "runs", compute="cold", kernel_pool=1,
                             max_parallel=1, sleep=lambda _seconds: None, observer=recorder,
                             jobs=jobs)
        storage_root = base / "lake"
        result = run_job(jobs["records_job"],
                         {"storage_root": str(storage_root), "crm_token": PARAM_SECRET}, options)
        yield RecordedRun(result, recorder, storage_root)
