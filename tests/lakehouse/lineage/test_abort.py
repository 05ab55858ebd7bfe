"""A dead job run's step runs that started and never ended get an ABORT event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medallion.lakehouse.lineage import abort_open_runs
from medallion.lakehouse.lineage.transport import events_path
from medallion.lakehouse.storage import StorageRoot


def event(kind: str, run_id: str, job_run: str) -> dict[str, Any]:
    return {
        "eventType": kind, "eventTime": "2026-12-03T10:00:00+00:00",
        "run": {"runId": run_id, "facets": {"medallion_task": {
            "job": "build_analytics", "job_run_id": job_run, "task": "bronze_fx_rates"}}},
        "job": {"namespace": "medallion", "name": "load_bronze_fx_rates"},
        "inputs": [], "outputs": [{"namespace": "file", "name": "bronze/fx_rates"}],
        "producer": "urn:test", "schemaURL": "urn:test",
    }


def test_only_the_open_step_runs_of_that_job_run_are_aborted_once(tmp_path: Path) -> None:
    path = events_path(StorageRoot(tmp_path))
    path.parent.mkdir(parents=True)
    written = [
        event("START", "open", "R1"), event("START", "done", "R1"),
        event("COMPLETE", "done", "R1"), event("START", "other-run", "R2"),
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in written))

    aborted = abort_open_runs(StorageRoot(tmp_path), "build_analytics", "R1", "the runner died")
    assert aborted == ["open"]

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[:4] == written
    abort = lines[4]
    assert (abort["eventType"], abort["run"]["runId"], abort["job"]) == (
        "ABORT", "open", written[0]["job"]
    )
    assert abort["run"]["facets"]["errorMessage"]["message"] == "the runner died"
    assert abort["run"]["facets"]["medallion_task"]["job_run_id"] == "R1"
    assert abort["outputs"] == []
    assert len(lines) == 5
    assert abort_open_runs(StorageRoot(tmp_path), "build_analytics", "R1", "the runner died") == []
