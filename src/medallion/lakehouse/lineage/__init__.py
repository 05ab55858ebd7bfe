"""OpenLineage for every pipeline step: ``@lineage_job`` on the step functions notebooks call.

A wrapped step emits START, then COMPLETE with its outputs' facets, or FAIL with the error (ABORT
when interrupted). What it reads and writes is declared beside the step, by the function given to
``@lineage_job`` (built from the table specs and the raw layout with
``medallion.lakehouse.lineage.steps``' vocabulary); DQ metrics and the frames it writes reach the
wrapper through ``medallion.lakehouse.lineage.observe``. Lineage never changes what a step does: its
exception propagates unchanged, its result is returned as it is, and a lineage failure (a transport
that is down, a facet that cannot be built) is logged as a warning, never raised. A wrapped step
called by another wrapped step is part of the caller's run and emits nothing of its own.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import OutputDataset, RunEvent, RunState
from openlineage.client.generated.error_message_run import ErrorMessageRunFacet

from medallion.lakehouse.lineage.columns import column_lineage
from medallion.lakehouse.lineage.events import (
    PRODUCER,
    JobRun,
    StepRun,
    bare_outputs,
    column_lineage_facet,
    dq_facets,
    failure_facets,
    run_event,
    schema_facet,
    statistics_facet,
)
from medallion.lakehouse.lineage.observe import Observations, current_observations, observing
from medallion.lakehouse.lineage.steps import DatasetRef, StepLineage
from medallion.lakehouse.lineage.transport import (
    client_for,
    events_path,
    lineage_enabled,
    lineage_url,
)
from medallion.lakehouse.locks import file_lock
from medallion.lakehouse.runtime import task_context
from medallion.lakehouse.storage import StorageRoot

__all__ = ["abort_open_runs", "lineage_job"]

log = logging.getLogger(__name__)

# The run ids of steps run outside a job: notebooks run by hand, the FX slice's default.
UNTRACKED_RUN_IDS = frozenset({"manual", "untracked"})

P = ParamSpec("P")
R = TypeVar("R")


def lineage_job(
    declare: Callable[..., StepLineage],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Emit OpenLineage START / COMPLETE / FAIL events around each call of a pipeline step.

    ``declare`` says what one call reads and writes: it is called with the step's arguments by
    name (defaults applied), so it names the parameters it needs and takes ``**_`` for the rest.
    Signature, return value and exceptions are the step's own.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(function)
        step = function.__name__

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if current_observations() is not None:  # called by another wrapped step
                return function(*args, **kwargs)
            started = _start(step, declare, signature, args, kwargs)
            with observing() as observed:
                try:
                    result = function(*args, **kwargs)
                except BaseException as error:
                    if started is not None:
                        _finish_failed(*started, observed, error)
                    raise
            if started is not None:
                _finish_complete(*started, observed, result)
            return result

        wrapper.declare_lineage = declare  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _start(
    step: str, declare: Callable[..., StepLineage], signature: inspect.Signature, args: Any,
    kwargs: Any,
) -> tuple[StepRun, OpenLineageClient] | None:
    """Declare the run and emit START; None (lineage off for this call) when that fails."""
    if not lineage_enabled():
        return None
    try:
        call = signature.bind(*args, **kwargs)
        call.apply_defaults()
        lineage = declare(**call.arguments)
        run = StepRun.start(lineage, _job_run(lineage.job_name, call.arguments))
        client = client_for(run.lineage.storage_root)
    except Exception as error:
        log.warning("lineage: no events for this %s call, its lineage failed: %s", step, error)
        return None
    _emit(client, run, run_event(run, RunState.START))
    return run, client


def _job_run(job_name: str, args: Mapping[str, Any]) -> JobRun | None:
    """The runner's task context, else the step's own ``run_id`` / ``job`` / ``task``."""
    context = task_context()
    if context is not None:
        return JobRun(context.job_key, context.run_id, context.task_key)
    run_id = args.get("run_id")
    if not run_id or run_id in UNTRACKED_RUN_IDS:
        return None
    job, task = args.get("job") or "medallion", args.get("task") or job_name
    return JobRun(str(job), str(run_id), str(task))


def _finish_complete(
    run: StepRun, client: OpenLineageClient, observed: Observations, result: Any
) -> None:
    try:
        rows = run.lineage.rows_written(result)
    except Exception as error:
        log.warning("lineage: %s: no output statistics: %s", run.lineage.job_name, error)
        rows = {}
    outputs = [_described(run.lineage, ref, observed, rows) for ref in run.lineage.outputs]
    _emit(client, run, run_event(run, RunState.COMPLETE, outputs=outputs))


def _finish_failed(
    run: StepRun, client: OpenLineageClient, observed: Observations, error: BaseException
) -> None:
    if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: stopped, not failed
        _emit(client, run, run_event(run, RunState.ABORT))
        return
    try:
        checked: dict[str, Any] = {
            metrics.dataset: dq_facets(metrics) for metrics in observed.dq_metrics
        }
        outputs = [
            OutputDataset(namespace=ref.namespace, name=ref.name, facets=checked.get(ref.name, {}))
            for ref in run.lineage.outputs
        ]
        event = run_event(run, RunState.FAIL, outputs=outputs, run_facets=failure_facets(error))
    except Exception as facet_error:
        log.warning("lineage: %s: FAIL facets failed: %s", run.lineage.job_name, facet_error)
        event = run_event(run, RunState.FAIL, outputs=bare_outputs(run.lineage.outputs))
    _emit(client, run, event)


def _described(
    lineage: StepLineage, ref: DatasetRef, observed: Observations, rows: Mapping[str, int]
) -> OutputDataset:
    """An output with what is known of it after the step: schema, rows, DQ, column lineage."""
    facets: dict[str, Any] = {}
    output_facets: dict[str, Any] = {}
    try:
        lakehouse = lineage.lakehouse
        if ref.table and lakehouse is not None and lakehouse.exists(ref.table):
            facets["schema"] = schema_facet(lakehouse.read(ref.table).schema)
        if ref.name in rows:
            output_facets["outputStatistics"] = statistics_facet(rows[ref.name])
        for metrics in observed.dq_metrics:
            if metrics.dataset == ref.name:
                facets.update(dq_facets(metrics))
        if ref.name in observed.frames:
            columns = column_lineage(observed.frames[ref.name])
            facets["columnLineage"] = column_lineage_facet(lineage.storage_root, columns)
    except Exception as error:
        log.warning("lineage: %s: facets of %s incomplete: %s", lineage.job_name, ref.name, error)
    return OutputDataset(
        namespace=ref.namespace, name=ref.name, facets=facets, outputFacets=output_facets
    )


def _emit(client: OpenLineageClient, run: StepRun, event: RunEvent) -> None:
    """Send ``event``; a transport failure is a warning, never the step's failure."""
    try:
        client.emit(event)
    except Exception as error:
        state = event.eventType.value if event.eventType else "?"
        log.warning(
            "lineage: could not emit the %s event of %s (run %s): %s",
            state, run.lineage.job_name, run.run_id, error,
        )


def abort_open_runs(storage_root: StorageRoot, job: str, job_run_id: str, why: str) -> list[str]:
    """ABORT every step run of job run ``job_run_id`` that started and never ended; their ids.

    For a job run whose runner died: its steps' START events have no COMPLETE or FAIL, and a
    lineage consumer would show them running for ever. Reads the file transport's events; with
    an HTTP transport the open runs are the backend's to see, and nothing is sent.
    """
    path = events_path(storage_root)
    if lineage_url() or not path.exists():
        return []
    started: dict[str, dict[str, Any]] = {}
    ended: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
            run_id = event["run"]["runId"]
        except (ValueError, KeyError, TypeError):
            continue
        task = event["run"].get("facets", {}).get("medallion_task", {})
        if (task.get("job"), task.get("job_run_id")) != (job, job_run_id):
            continue
        if event.get("eventType") == "START":
            started[run_id] = event
        else:
            ended.add(run_id)
    open_runs = [run_id for run_id in started if run_id not in ended]
    now = datetime.now(UTC).isoformat()
    error = {
        "_producer": PRODUCER, "_schemaURL": ErrorMessageRunFacet._get_schema(),
        "message": why, "programmingLanguage": "python",
    }
    lines = [
        json.dumps({
            **started[run_id], "eventType": "ABORT", "eventTime": now, "outputs": [],
            "run": {"runId": run_id,
                    "facets": {**started[run_id]["run"].get("facets", {}), "errorMessage": error}},
        })
        for run_id in open_runs
    ]
    if lines:  # appended as the file transport appends: one locked write per event
        with file_lock(path.with_name(f"{path.name}.lock")), path.open("a") as handle:
            handle.writelines(f"{line}\n" for line in lines)
    return open_runs
