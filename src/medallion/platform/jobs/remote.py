"""Jobs deployed to a Databricks workspace: run and watched through databricks-sdk.

``medallion jobs run <job> -t dev`` submits the job that ``databricks bundle deploy -t dev``
deployed (``jobs.run_now``), reports each task's state as it changes, and ends with the run's
result, as the local runner does for a local run. A run that has not finished when the watch
times out goes on in the workspace; the error says where to follow it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from medallion.lakehouse.errors import ConfigError, JobRunFailed, MedallionError

# The result states a run counts as passed: as the local runner, a run whose failed tasks the
# job tolerates (``run_if`` on its leaves) passed with failures.
PASSED = frozenset({"SUCCESS", "SUCCESS_WITH_FAILURES"})
FINISHED = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})


class RunStillRunning(MedallionError):
    """A workspace run had not finished when the watch gave up (the run goes on)."""


@dataclass(frozen=True)
class TaskState:
    """One task of a workspace run: its life-cycle state and, once finished, its result."""

    task_key: str
    life_cycle: str
    result: str | None

    def __str__(self) -> str:
        return f"{self.task_key}: {self.result or self.life_cycle}"


@dataclass(frozen=True)
class RemoteRun:
    """Where a workspace run stands: its id, page, states and its tasks'."""

    run_id: int
    url: str
    life_cycle: str
    result: str | None
    message: str
    tasks: tuple[TaskState, ...]

    @property
    def finished(self) -> bool:
        return self.life_cycle in FINISHED

    @property
    def passed(self) -> bool:
        return self.result in PASSED


def deployed_job_id(client: Any, job: str) -> int:
    """The id of ``job`` as deployed: its own name, or development mode's ``[dev <user>] <job>``."""
    user = str(client.current_user.me().user_name or "")
    names = {job, f"[dev {user.split('@')[0]}] {job}"}
    found = [
        int(listed.job_id)
        for listed in client.jobs.list()
        if listed.settings is not None and listed.settings.name in names
    ]
    if len(found) != 1:
        shown = " or ".join(repr(name) for name in sorted(names))
        raise ConfigError(
            f"job {job!r} on {client.config.host}: expected one deployed job named {shown}, "
            f"found {len(found)}; deploy it first (`databricks bundle deploy -t <target>`)"
        )
    return found[0]


def run_deployed_job(
    client: Any,
    job: str,
    parameters: Mapping[str, str],
    *,
    timeout_seconds: float,
    poll_seconds: float = 5.0,
    on_change: Callable[[RemoteRun, tuple[TaskState, ...]], None] = lambda run, changed: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RemoteRun:
    """Run the deployed ``job`` now and watch it to the end; raise unless it passed.

    ``on_change`` gets the run and the tasks whose state changed, at each poll that changed one.
    Raises ``JobRunFailed`` for a run that did not pass and ``RunStillRunning`` when
    ``timeout_seconds`` pass first (the run is not cancelled).
    """
    job_id = deployed_job_id(client, job)
    run_id = int(client.jobs.run_now(job_id=job_id, job_parameters=dict(parameters)).run_id)
    deadline = clock() + timeout_seconds
    seen: dict[str, TaskState] = {}
    while True:
        run = _remote_run(client.jobs.get_run(run_id=run_id))
        changed = tuple(task for task in run.tasks if seen.get(task.task_key) != task)
        seen.update({task.task_key: task for task in changed})
        if changed or run.finished:
            on_change(run, changed)
        if run.finished:
            break
        if clock() >= deadline:
            raise RunStillRunning(
                f"run {run_id} of {job!r}: expected it to finish within {timeout_seconds:g} s, "
                f"it is still {run.life_cycle}; it goes on in the workspace: {run.url}"
            )
        sleep(poll_seconds)
    if not run.passed:
        failed = [str(task) for task in run.tasks if task.result not in (*PASSED, None)]
        raise JobRunFailed(
            f"run {run_id} of {job!r} ended {run.result or run.life_cycle}"
            + (f": {run.message}" if run.message else "")
            + (f"; tasks {', '.join(failed)}" if failed else "")
            + f" ({run.url})"
        )
    return run


def deployed_run(client: Any, run_id: int) -> RemoteRun:
    """A run of a deployed job, as it stands now (``ConfigError`` when the workspace has none)."""
    from databricks.sdk.errors import NotFound

    try:
        return _remote_run(client.jobs.get_run(run_id=run_id))
    except NotFound as error:
        raise ConfigError(
            f"run {run_id} on {client.config.host}: expected a run of a job there, found none"
        ) from error


def _remote_run(run: Any) -> RemoteRun:
    """The SDK's ``Run`` as the states we report."""
    state = run.state
    return RemoteRun(
        run_id=int(run.run_id),
        url=str(run.run_page_url or ""),
        life_cycle=_name(state.life_cycle_state) if state else "PENDING",
        result=_name(state.result_state) if state and state.result_state else None,
        message=str(state.state_message or "") if state else "",
        tasks=tuple(
            TaskState(
                task_key=str(task.task_key),
                life_cycle=_name(task.state.life_cycle_state) if task.state else "PENDING",
                result=_name(task.state.result_state)
                if task.state and task.state.result_state else None,
            )
            for task in run.tasks or ()
        ),
    )


def _name(value: Any) -> str:
    """An SDK enum member's name (or a plain string as it is)."""
    return str(getattr(value, "value", value))
