"""The DQ checks of a job run, as the runner reads them: a JSON-lines mirror of the DQ event log.

The DQ event log (``ops.dq_event_log``) is a Delta table, which only Spark reads. So that the
runner can put per-expectation counts into the run summary and MLflow without Spark, every check
that is appended to the event log inside a local job run is also appended, as one JSON line, to
``<run_dir>/_dq/<task>.jsonl`` (beside ``_task_values/``). Outside a local job run (interactive,
or on Databricks) nothing is mirrored. Kept free of heavy imports.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medallion.lakehouse.runtime import task_context

if TYPE_CHECKING:
    from medallion.lakehouse.quality.metrics import DQMetrics

DQ_DIR = "_dq"
_APPEND_LOCK = threading.Lock()


def record_dq_check(metrics: DQMetrics, *, dataset: str, layer: str) -> Path | None:
    """Mirror one check into the running task's ``_dq/<task>.jsonl``; its path (None: no run)."""
    context = task_context()
    if context is None:
        return None
    path = context.run_dir / DQ_DIR / f"{context.task_key}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({**metrics.as_dict(), "dataset": dataset, "layer": layer}, sort_keys=True)
    with _APPEND_LOCK, path.open("a", encoding="utf-8") as log:
        log.write(line + "\n")
    return path


def read_dq_checks(run_dir: Path, task_key: str) -> list[dict[str, Any]]:
    """The checks ``task_key`` mirrored during a run, in the order they ran (empty if none)."""
    path = run_dir / DQ_DIR / f"{task_key}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
