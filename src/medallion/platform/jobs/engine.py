"""Run a job's tasks in dependency order with the semantics of the Databricks Jobs service.

``depends_on`` (with a condition task's ``outcome``), ``run_if``, ``condition_task`` on task
values, job parameters pushed down to every task, ``max_retries`` with a fixed
``min_retry_interval_millis`` between attempts (the Jobs service does not back off), task and
job ``timeout_seconds``, health rules, job and task notifications (the duration warning sent while
the run is still going), and one run at a time per job
(``max_concurrent_runs``, queued as the Jobs service queues). Every executed notebook is kept under
``<runs_root>/<job_key>/<run_id>/``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from medallion.lakehouse.errors import BundleError, JobRunFailed, is_deterministic
from medallion.lakehouse.files import write_json_atomic
from medallion.lakehouse.runtime import TaskContext, read_task_values
from medallion.lakehouse.storage import StorageRoot, storage_root_of
from medallion.platform import compute
from medallion.platform.jobs.channels import default_notifier
from medallion.platform.jobs.conditions import evaluate_condition
from medallion.platform.jobs.cpu import cpu_delta, process_cpu_seconds
from medallion.platform.jobs.kernels import KernelPool
from medallion.platform.jobs.model import JobSpec, NotificationEvent, RunIf, TaskSpec
from medallion.platform.jobs.notebook import run_notebook
from medallion.platform.jobs.notifications import (
    DQViolation,
    Notification,
    Notifier,
    RunNotifications,
    redact_parameters,
)
from medallion.platform.jobs.queue import job_lock_path, job_run_lock, record_lock_holder
from medallion.platform.jobs.references import ReferenceScope, resolve_references

log = logging.getLogger(__name__)
SUCCESS, FAILED, TIMEDOUT = "SUCCESS", "FAILED", "TIMEDOUT"
EXCLUDED, UPSTREAM_FAILED, CANCELED = "EXCLUDED", "UPSTREAM_FAILED", "CANCELED"
# A run's record says RUNNING from its start; a run whose runner died says INTERNAL_ERROR once a
# later run of its job finds it (the Jobs service's life-cycle state for a run that broke off).
RUNNING, INTERNAL_ERROR = "RUNNING", "INTERNAL_ERROR"
REAPED_RUNS = 50  # how many of a job's latest runs each new run checks for a dead runner
FAILURES = {FAILED, TIMEDOUT, UPSTREAM_FAILED, CANCELED}
MAX_RETRY_WAIT_SECONDS = 600.0


@dataclass
class TaskRun:
    """What happened to one task in a run."""

    task_key: str
    state: str = "PENDING"
    attempts: int = 0
    duration_seconds: float = 0.0
    error: str | None = None
    error_class: str | None = None  # the exception's class, when a notebook raised
    error_message: str | None = None  # its whole message (``error`` keeps the last line)
    notebook_output: str | None = None
    # A for_each task's iterations: each one's notebook, or the job run it started.
    iteration_outputs: list[str] = field(default_factory=list)
    condition_result: str | None = None
    reason: str | None = None
    # CPU time of the task's notebook kernels (every attempt and iteration; a run_job_task: its
    # child run's tasks), for the local cost estimate.
    cpu_seconds: float = 0.0


@dataclass
class JobRunResult:
    """A finished job run."""

    job_key: str
    run_id: str
    run_dir: Path
    state: str
    tasks: dict[str, TaskRun]
    duration_seconds: float
    parameters: dict[str, str]
    started_at: str = ""
    ended_at: str = ""
    health_breaches: list[str] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    # CPU time of the warm compute server during the run (None: cold or remote compute). It is
    # shared: runs that overlap (a parent and its child run) each count it.
    compute_cpu_seconds: float | None = None
    # The runner's process, so a later run can tell a run still going from one whose runner died.
    pid: int | None = None
    pid_started_at: float | None = None  # the process's start (a reused pid is another process)
    state_message: str = ""

    @property
    def exit_code(self) -> int:
        """0 when the run succeeded, or succeeded with failures its job tolerates; else 1.

        A job tolerates a task's failure by running its leaves regardless (``run_if``), as on
        Databricks; the run still alerts (``on_failure``) then.
        """
        return 0 if self.state in {SUCCESS, "SUCCESS_WITH_FAILURES"} else 1

    def failure_message(self) -> str:
        """Every failed task, its notebook, cell and error, one line each."""
        lines = [f"job {self.job_key!r} run {self.run_id} {self.state}"]
        for run in self.tasks.values():
            if run.state in {FAILED, TIMEDOUT}:
                lines.append(f"  task {run.task_key!r} {run.state} after {run.attempts} "
                             f"attempt(s): {run.error}")
            elif run.state == UPSTREAM_FAILED:
                lines.append(f"  task {run.task_key!r} did not run: {run.reason}")
        return "\n".join(lines)


class RunObserver:
    """Receives progress events; the CLI prints them, tests may record them."""

    def job_queued(self, job: JobSpec, holder: str) -> None:
        """Another run of the job holds its lock: this one waits for ``holder``."""

    def job_started(self, job: JobSpec, run_id: str, run_dir: Path,
                    parameters: Mapping[str, str]) -> None:
        """The run began."""

    def task_started(self, task_key: str, attempt: int) -> None:
        """An attempt of a task began."""

    def task_finished(self, run: TaskRun) -> None:
        """A task reached its final state."""

    def job_finished(self, result: JobRunResult) -> None:
        """The run ended."""

    def notification_sent(self, notification: Notification) -> None:
        """A job or task notification went out."""


class ObserverGroup(RunObserver):
    """Hands every event to each of several observers, in order."""

    def __init__(self, *observers: RunObserver) -> None:
        self.observers = observers

    def job_queued(self, job: JobSpec, holder: str) -> None:
        """Another run of the job holds its lock."""
        for observer in self.observers:
            observer.job_queued(job, holder)

    def job_started(self, job: JobSpec, run_id: str, run_dir: Path,
                    parameters: Mapping[str, str]) -> None:
        """The run began."""
        for observer in self.observers:
            observer.job_started(job, run_id, run_dir, parameters)

    def task_started(self, task_key: str, attempt: int) -> None:
        """An attempt of a task began."""
        for observer in self.observers:
            observer.task_started(task_key, attempt)

    def task_finished(self, run: TaskRun) -> None:
        """A task reached its final state."""
        for observer in self.observers:
            observer.task_finished(run)

    def job_finished(self, result: JobRunResult) -> None:
        """The run ended."""
        for observer in self.observers:
            observer.job_finished(result)

    def notification_sent(self, notification: Notification) -> None:
        """A job or task notification went out."""
        for observer in self.observers:
            observer.notification_sent(notification)


@dataclass(frozen=True)
class RunOptions:
    """How to run: where outputs go and which compute the notebooks attach to."""

    runs_root: Path
    compute: str = "warm"  # "warm" (shared local Connect server), "cold", or an sc:// URL
    kernel_pool: int = 5  # most kernels started ahead; the job's width caps it
    max_parallel: int = 2
    observer: RunObserver = field(default_factory=RunObserver)
    sleep: Callable[[float], None] = time.sleep
    # None: the outbox under runs_root (and MEDALLION_NOTIFY_WEBHOOK_URL when set), and the alert
    # channels configured in the secrets provider.
    notifier: Notifier | None = None
    # The bundle's jobs by key, for run_job_task (a job that runs another job).
    jobs: Mapping[str, JobSpec] = field(default_factory=dict)
    # Kernels kept across runs by the caller (its own to close): used when they were started
    # for the same compute. A child run (run_job_task) always shares its parent's.
    kernels: KernelPool | None = None


def new_run_id(now: datetime) -> str:
    """Unique, and sortable to the second: ``20261126T134500Z-3fa2c1`` (``run_records``
    orders the runs of one second)."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_records(folder: Path, pattern: str = "*/run.json") -> list[Path]:
    """The run records (``run.json``) ``pattern`` finds under ``folder``, in the order the runs
    started: by their ids, and the runs of one second (whose ids differ only in a random suffix)
    by their records' ``started_at``."""
    by_id = sorted(folder.glob(pattern), key=lambda path: path.parent.name)
    ordered: list[Path] = []
    for _, same_second in itertools.groupby(by_id, key=lambda path: path.parent.name[:16]):
        runs = list(same_second)
        ordered += runs if len(runs) == 1 else sorted(runs, key=_started_at)
    return ordered


def _started_at(record: Path) -> str:
    try:
        return str(json.loads(record.read_text(encoding="utf-8")).get("started_at") or "")
    except (OSError, ValueError, AttributeError):  # being written, or not a record
        return ""


def resolve_parameters(job: JobSpec, overrides: Mapping[str, str]) -> dict[str, str]:
    """Job parameters: declared defaults, overridden by ``--param k=v``; unknown names fail."""
    unknown = sorted(set(overrides) - set(job.parameters))
    if unknown:
        raise BundleError(
            f"job {job.key!r} has no parameter(s) {', '.join(unknown)}; declared: "
            f"{', '.join(sorted(job.parameters)) or 'none'}"
        )
    return {**job.parameters, **overrides}


class _Run:
    """The state of one job run while it executes."""

    def __init__(self, job: JobSpec, parameters: dict[str, str], options: RunOptions,
                 env: dict[str, str]) -> None:
        self.job = job
        self.options = options
        self.start = datetime.now(UTC)
        self.started = time.monotonic()
        self.run_id = new_run_id(self.start)
        self.parameters: dict[str, str] = {}
        # Parameter values may use job-level references, e.g. {{job.start_time.iso_date}}.
        self.parameters = {
            name: resolve_references(value, self.scope(""), f"job {job.key!r} parameter {name!r}")
            for name, value in parameters.items()
        }
        self.run_dir = options.runs_root / job.key / self.run_id
        self.run_dir.mkdir(parents=True)
        self.env = env
        self.tasks = {task.task_key: TaskRun(task.task_key) for task in job.tasks}
        self.deadline = (time.monotonic() + job.timeout_seconds) if job.timeout_seconds else None
        self.changed = threading.Condition()
        self.notices = RunNotifications(
            job, run_id=self.run_id, start=self.start, started=self.started,
            parameters=self.parameters, run_dir=self.run_dir,
            notifier=options.notifier or default_notifier(options.runs_root),
            on_sent=options.observer.notification_sent,
        )

    def checkpoint(self) -> None:
        """Write ``run.json`` as the run stands (``RUNNING``): a killed run leaves its record."""
        write_run_record(JobRunResult(
            self.job.key, self.run_id, self.run_dir, RUNNING, self.tasks,
            round(time.monotonic() - self.started, 3), self.parameters,
            started_at=self.start.isoformat(), notifications=list(self.notices.sent),
            pid=os.getpid(), pid_started_at=_process_started_at(os.getpid()),
        ))

    def scope(self, task_key: str, iteration_input: Any = None) -> ReferenceScope:
        return ReferenceScope(
            job_key=self.job.key, job_name=self.job.name, run_id=self.run_id,
            start_time=self.start, job_parameters=self.parameters, task_key=task_key,
            task_values=lambda key: read_task_values(self.run_dir, key),
            iteration_input=iteration_input,
        )

    def dependency_results(self, task: TaskSpec) -> list[str]:
        """Each dependency as ``success``, ``failed`` or ``excluded``."""
        results = []
        for dep in task.depends_on:
            upstream = self.tasks[dep.task_key]
            if upstream.state == SUCCESS:
                taken = dep.outcome is None or upstream.condition_result == dep.outcome
                results.append("success" if taken else "excluded")
            elif upstream.state in FAILURES:
                results.append("failed")
            else:
                results.append("excluded")
        return results

    def decide(self, task: TaskSpec) -> tuple[bool, str | None, str | None]:
        """Whether the task runs, else its state and why (``run_if`` semantics)."""
        results = self.dependency_results(task)
        if not results:
            return True, None, None
        succeeded = results.count("success")
        failed = results.count("failed")
        rule = task.run_if
        runs = {
            RunIf.ALL_SUCCESS: succeeded == len(results),
            RunIf.AT_LEAST_ONE_SUCCESS: succeeded > 0,
            RunIf.NONE_FAILED: failed == 0 and succeeded > 0,
            RunIf.ALL_DONE: True,
            RunIf.AT_LEAST_ONE_FAILED: failed > 0,
            RunIf.ALL_FAILED: failed == len(results),
        }[rule]
        if runs:
            return True, None, None
        upstream = ", ".join(f"{d.task_key}={self.tasks[d.task_key].state}"
                             + (f"(outcome {self.tasks[d.task_key].condition_result})"
                                if d.outcome else "") for d in task.depends_on)
        reason = f"run_if {rule.value} not met by its dependencies ({upstream})"
        if failed and rule in {RunIf.ALL_SUCCESS, RunIf.AT_LEAST_ONE_SUCCESS, RunIf.NONE_FAILED}:
            return False, UPSTREAM_FAILED, reason
        return False, EXCLUDED, reason

    def remaining_seconds(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


def _execute_condition(run: _Run, task: TaskSpec, task_run: TaskRun) -> None:
    assert task.condition is not None  # parse_task guarantees it for condition tasks
    where = f"job {run.job.key!r} task {task.task_key!r}"
    try:
        left = resolve_references(task.condition.left, run.scope(task.task_key), where)
        right = resolve_references(task.condition.right, run.scope(task.task_key), where)
        outcome = evaluate_condition(task.condition.op, left, right, where)
    except (BundleError, ValueError) as error:
        task_run.state, task_run.error = FAILED, str(error)
        return
    task_run.state, task_run.condition_result = SUCCESS, "true" if outcome else "false"


def _notebook_parameters(run: _Run, task: TaskSpec, iteration_input: Any = None
                         ) -> dict[str, str]:
    where = f"job {run.job.key!r} task {task.task_key!r} base_parameters"
    scope = run.scope(task.task_key, iteration_input)
    parameters = {k: resolve_references(v, scope, where) for k, v in task.base_parameters.items()}
    parameters.update(run.parameters)  # job parameters are pushed down and take precedence
    return parameters


def _execute_notebook(run: _Run, task: TaskSpec, task_run: TaskRun, pool: KernelPool, *,
                      output_stem: str | None = None, iteration_input: Any = None) -> None:
    assert task.notebook_path is not None  # parse_task guarantees it for notebook tasks
    try:
        parameters = _notebook_parameters(run, task, iteration_input)
    except BundleError as error:
        task_run.state, task_run.error, task_run.attempts = FAILED, str(error), 1
        return
    context = TaskContext(run.job.key, run.run_id, task.task_key, run.run_dir, parameters)
    stem = output_stem or task.task_key
    final_output = run.run_dir / f"{stem}.ipynb"
    final_output.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(task.max_retries + 1):
        task_run.attempts = attempt + 1
        if output_stem is None:
            run.options.observer.task_started(task.task_key, attempt + 1)
            if attempt == 0 or not task.notifications.alert_on_last_attempt:
                run.notices.send(NotificationEvent.ON_START, "RUNNING", task_key=task.task_key)
        timeout = task.timeout_seconds
        remaining = run.remaining_seconds()
        if remaining is not None:
            if remaining <= 0:
                task_run.state, task_run.error = TIMEDOUT, "job timeout_seconds reached"
                return
            timeout = int(min(timeout or remaining, remaining)) or 1
        outcome = run_notebook(notebook=task.notebook_path, output=final_output,
                               parameters=parameters, context=context, pool=pool,
                               timeout_seconds=timeout)
        task_run.state, task_run.error = outcome.state, outcome.error
        task_run.error_class, task_run.error_message = outcome.error_class, outcome.error_message
        task_run.cpu_seconds = round(task_run.cpu_seconds + outcome.cpu_seconds, 3)
        task_run.notebook_output = str(final_output)
        if outcome.state == SUCCESS:
            return
        if outcome.state == FAILED and is_deterministic(outcome.error_class):
            # The same input fails the same way: a retry would only delay the failure.
            task_run.reason = f"not retried: {outcome.error_class} is not a transient error"
            return
        retryable = outcome.state == FAILED or task.retry_on_timeout
        if not retryable or attempt == task.max_retries:
            return
        if output_stem is None and not task.notifications.alert_on_last_attempt:
            run.notices.send(NotificationEvent.ON_FAILURE, outcome.state, task_key=task.task_key,
                             details=[f"Attempt {attempt + 1} of {task.max_retries + 1}, "
                                      "retrying", f"Error: {outcome.error}"])
        if final_output.exists():
            final_output.replace(run.run_dir / f"{stem}.attempt-{attempt + 1}.ipynb")
        # The Jobs service waits the same interval before every retry; it does not back off.
        run.options.sleep(min(task.min_retry_interval_millis / 1000, MAX_RETRY_WAIT_SECONDS))


def _execute_for_each(run: _Run, task: TaskSpec, task_run: TaskRun, pool: KernelPool) -> None:
    """Run the nested task once per input item; the loop succeeds when every iteration does."""
    assert task.for_each is not None  # parse_task guarantees it for for_each tasks
    where = f"job {run.job.key!r} task {task.task_key!r} for_each_task.inputs"
    run.options.observer.task_started(task.task_key, 1)
    task_run.attempts = 1
    try:
        items = json.loads(resolve_references(task.for_each.inputs, run.scope(task.task_key),
                                              where))
    except (BundleError, json.JSONDecodeError) as error:
        task_run.state, task_run.error = FAILED, f"{where}: expected a JSON list: {error}"
        return
    if not isinstance(items, list):
        task_run.state = FAILED
        task_run.error = f"{where}: expected a JSON list, got {type(items).__name__}"
        return
    nested = task.for_each.task
    iterations = [TaskRun(f"{nested.task_key}[{i}]") for i in range(len(items))]

    def iterate(index: int) -> None:
        if nested.run_job is not None:
            _execute_run_job(run, nested, iterations[index], pool,
                             iteration_input=items[index])
            return
        _execute_notebook(run, nested, iterations[index], pool,
                          output_stem=f"{task.task_key}/iteration-{index}",
                          iteration_input=items[index])

    with ThreadPoolExecutor(max_workers=max(task.for_each.concurrency, 1),
                            thread_name_prefix=f"{task.task_key}-iteration") as executor:
        list(executor.map(iterate, range(len(items))))
    failed = [it for it in iterations if it.state != SUCCESS]
    task_run.notebook_output = str(run.run_dir / task.task_key)
    task_run.iteration_outputs = [it.notebook_output for it in iterations if it.notebook_output]
    task_run.cpu_seconds = round(sum(it.cpu_seconds for it in iterations), 3)
    if failed:
        task_run.state = FAILED
        task_run.error = (f"{len(failed)} of {len(items)} iterations failed; first: "
                          f"{failed[0].task_key}: {failed[0].error}")
    else:
        task_run.state = SUCCESS


def _execute_run_job(run: _Run, task: TaskSpec, task_run: TaskRun, pool: KernelPool,
                     iteration_input: Any = None) -> None:
    """Run another job of the bundle to completion; this task ends as that run ends.

    The child run takes its kernels from this run's pool: the kernels already started (and the
    imports they paid) serve both, and no second pool holds memory meanwhile.
    """
    assert task.run_job is not None  # parse_task guarantees it for run_job tasks
    where = f"job {run.job.key!r} task {task.task_key!r} run_job_task"
    task_run.attempts = 1
    key = task.run_job.job_key
    if key == run.job.key:
        task_run.state, task_run.error = FAILED, f"{where}: a job cannot run itself"
        return
    if key not in run.options.jobs:
        task_run.state = FAILED
        task_run.error = (f"{where}: job_id {key!r} is not a job of the bundle; jobs: "
                          f"{', '.join(sorted(run.options.jobs)) or 'none given to the runner'}")
        return
    scope = run.scope(task.task_key, iteration_input)
    try:
        parameters = {name: resolve_references(value, scope, f"{where}.job_parameters")
                      for name, value in task.run_job.job_parameters.items()}
        child = run_job(run.options.jobs[key], parameters, replace(run.options, kernels=pool))
    except (BundleError, JobRunFailed) as error:
        task_run.state, task_run.error = FAILED, f"{where}: {error}"
        return
    task_run.notebook_output = str(child.run_dir)
    task_run.cpu_seconds = round(sum(t.cpu_seconds for t in child.tasks.values()), 3)
    if child.exit_code:
        task_run.state = FAILED
        task_run.error = f"run {child.run_id} of job {key!r} {child.state}: " + "; ".join(
            line.strip() for line in child.failure_message().splitlines()[1:]
        )
    else:
        task_run.state = SUCCESS


def _execute(run: _Run, task: TaskSpec, pool: KernelPool) -> None:
    task_run = run.tasks[task.task_key]
    started = time.monotonic()
    try:
        if task.kind != "notebook":  # a notebook task announces each attempt itself
            run.notices.send(NotificationEvent.ON_START, "RUNNING", task_key=task.task_key)
        if task.condition is not None:
            run.options.observer.task_started(task.task_key, 1)
            task_run.attempts = 1
            _execute_condition(run, task, task_run)
        elif task.for_each is not None:
            _execute_for_each(run, task, task_run, pool)
        elif task.run_job is not None:
            run.options.observer.task_started(task.task_key, 1)
            _execute_run_job(run, task, task_run, pool)
        else:
            _execute_notebook(run, task, task_run, pool)
    except Exception as error:  # the runner's own fault: fail this task, keep the run consistent
        task_run.state, task_run.error = FAILED, f"{type(error).__name__}: {error}"
    finally:
        task_run.duration_seconds = round(time.monotonic() - started, 3)
        run.options.observer.task_finished(task_run)
        _notify_task_end(run, task, task_run)
        with run.changed:
            run.checkpoint()
            run.changed.notify_all()


def _notify_task_end(run: _Run, task: TaskSpec, task_run: TaskRun) -> None:
    if task_run.state == SUCCESS:
        run.notices.send(NotificationEvent.ON_SUCCESS, SUCCESS, task_key=task.task_key)
    elif task_run.state in {FAILED, TIMEDOUT}:
        violation = DQViolation.of(task_run.error_class, task_run.error_message)
        # Every failed task alerts: to its own on_failure list, else to the job's (where the
        # DQ-violation alert of a breaker already goes).
        run.notices.send(NotificationEvent.ON_FAILURE, task_run.state, task_key=task.task_key,
                         details=[f"Attempts: {task_run.attempts}", f"Error: {task_run.error}"],
                         final=violation is None)
        if violation is not None:
            run.notices.dq_violation(task.task_key, task_run.state, violation)


def _job_state(run: _Run) -> str:
    states = {key: task_run.state for key, task_run in run.tasks.items()}
    if not any(state in FAILURES for state in states.values()):
        return SUCCESS
    leaves = [t.task_key for t in run.job.tasks if not run.job.downstream_of(t.task_key)]
    if any(states[leaf] in FAILURES for leaf in leaves):
        return TIMEDOUT if any(s == TIMEDOUT for s in states.values()) else FAILED
    return "SUCCESS_WITH_FAILURES"


def _schedule(run: _Run, pool: KernelPool) -> None:
    pending = {task.task_key: task for task in run.job.tasks}
    running: dict[str, Future[None]] = {}
    with ThreadPoolExecutor(max_workers=run.options.max_parallel,
                            thread_name_prefix="task") as executor:
        while pending or running:
            with run.changed:
                for key in [k for k, f in running.items() if f.done()]:
                    running.pop(key).result()
                for key, task in list(pending.items()):
                    if any(d.task_key in pending or d.task_key in running
                           for d in task.depends_on):
                        continue
                    del pending[key]
                    remaining = run.remaining_seconds()
                    if remaining is not None and remaining <= 0:
                        run.tasks[key].state = CANCELED
                        run.tasks[key].reason = "job timeout_seconds reached"
                        run.options.observer.task_finished(run.tasks[key])
                        continue
                    runs, state, reason = run.decide(task)
                    if not runs:
                        run.tasks[key].state, run.tasks[key].reason = state or EXCLUDED, reason
                        run.options.observer.task_finished(run.tasks[key])
                        continue
                    run.tasks[key].state = RUNNING
                    run.checkpoint()  # the record shows what was running, should the run die
                    running[key] = executor.submit(_execute, run, task, pool)
                if running and not any(f.done() for f in running.values()):
                    run.changed.wait(timeout=1.0)


def _health_breaches(job: JobSpec, duration: float) -> list[str]:
    breaches = []
    for rule in job.health_rules:
        if rule.metric == "RUN_DURATION_SECONDS" and rule.op == "GREATER_THAN" \
                and duration > rule.value:
            breaches.append(f"RUN_DURATION_SECONDS {duration:.1f} > {rule.value:.0f}")
    return breaches


def _compute_env(storage_root: StorageRoot | None, options: RunOptions, lease: str
                 ) -> tuple[dict[str, str], int | None]:
    """The kernels' environment, and the warm compute server's process id (else None)."""
    if options.compute == "cold":
        return {}, None
    if options.compute.startswith("sc://"):
        return {"SPARK_REMOTE": options.compute}, None
    if options.compute != "warm":
        raise BundleError(f"compute {options.compute!r}: expected 'warm', 'cold' or an sc:// URL")
    if storage_root is None:
        raise BundleError("warm compute needs the job parameter 'storage_root'")
    server = compute.acquire_server(storage_root, lease)
    return {"SPARK_REMOTE": server.url}, server.pid


def write_run_record(result: JobRunResult) -> Path:
    """``run.json`` beside the executed notebooks: states, attempts, durations, errors.

    A parameter whose name says it is a secret is recorded as ``[REDACTED]``.
    """
    record: dict[str, Any] = asdict(result)
    record["parameters"] = redact_parameters(result.parameters)
    record["run_dir"] = str(result.run_dir)
    record["tasks"] = [asdict(task_run) for task_run in result.tasks.values()]
    path = result.run_dir / "run.json"
    write_json_atomic(path, record)  # a reader (or a kill) never sees half a record
    return path


def _result_of(record: Mapping[str, Any], run_dir: Path) -> JobRunResult:
    """A run's result as its ``run.json`` holds it."""
    fields = set(TaskRun.__dataclass_fields__)
    tasks = {task["task_key"]: TaskRun(**{k: v for k, v in task.items() if k in fields})
             for task in record.get("tasks", [])}
    return JobRunResult(
        str(record.get("job_key")), str(record.get("run_id")), run_dir, str(record["state"]),
        tasks, float(record.get("duration_seconds") or 0.0), dict(record.get("parameters", {})),
        started_at=str(record.get("started_at", "")), ended_at=str(record.get("ended_at", "")),
        pid=record.get("pid"), pid_started_at=record.get("pid_started_at"),
        state_message=str(record.get("state_message", "")),
    )


def _process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (None when there is no such process)."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _runner_alive(record: Mapping[str, Any]) -> bool:
    pid, started = record.get("pid"), record.get("pid_started_at")
    if not isinstance(pid, int):
        return False
    now_started = _process_started_at(pid)
    return now_started is not None and (started is None or abs(now_started - started) < 1.0)


def reap_dead_runs(job: JobSpec, runs_root: Path, notifier: Notifier | None = None
                   ) -> list[JobRunResult]:
    """Mark the runs of ``job`` whose runner died (``RUNNING``, process gone) ``INTERNAL_ERROR``.

    A task that was running is ``FAILED`` and one not started ``CANCELED``, each saying why;
    the run's record is rewritten, its job's ``on_failure`` destinations are notified and its
    open lineage runs aborted. A run whose process is alive is left alone. Returns the runs
    marked, as results (for the observers that summarise a finished run).
    """
    marked: list[JobRunResult] = []
    # The latest runs only: a record is rewritten once it is found.
    for path in run_records(runs_root / job.key)[-REAPED_RUNS:]:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("state") != RUNNING or _runner_alive(record):
            continue
        now = datetime.now(UTC)
        why = (f"the runner (pid {record.get('pid')}) ended without finishing the run: killed "
               f"or crashed; found at {now.isoformat()}")
        for task in record.get("tasks", []):
            if task.get("state") == RUNNING:
                task["state"], task["error"] = FAILED, f"did not finish: {why}"
            elif task.get("state") == "PENDING":
                task["state"], task["reason"] = CANCELED, f"not started: {why}"
        record.update(state=INTERNAL_ERROR, ended_at=now.isoformat(), state_message=why)
        write_json_atomic(path, record)
        marked.append(_result_of(record, path.parent))
        log.warning("job %s run %s: %s", job.key, record.get("run_id"), why)
        started = datetime.fromisoformat(record["started_at"]) if record.get("started_at") \
            else now
        notices = RunNotifications(
            job, run_id=str(record.get("run_id")), start=started,
            started=time.monotonic() - (now - started).total_seconds(),
            parameters=record.get("parameters", {}), run_dir=path.parent,
            notifier=notifier or default_notifier(runs_root), on_sent=lambda sent: None,
        )
        notices.send(NotificationEvent.ON_FAILURE, INTERNAL_ERROR, details=[why])
        storage_root = storage_root_of(record.get("parameters", {}))
        if storage_root is not None:
            from medallion.lakehouse.lineage import (
                abort_open_runs,  # imports Spark: only when needed
            )

            aborted = abort_open_runs(storage_root, job.key, str(record.get("run_id")), why)
            if aborted:
                log.warning("job %s run %s: lineage ABORT for %d step run(s) left open",
                            job.key, record.get("run_id"), len(aborted))
    return marked


def notebook_width(job: JobSpec) -> int:
    """The most notebooks ``job`` can run at once: per dependency depth, its notebook tasks.

    A ``for_each_task`` counts its concurrency; condition tasks and ``run_job_task`` (the child
    run shares this run's kernels, one task of it at a time per slot) count nothing.
    """
    depth: dict[str, int] = {}
    tasks = {task.task_key: task for task in job.tasks}

    def depth_of(key: str, seen: frozenset[str] = frozenset()) -> int:
        if key not in depth:
            parents = [d.task_key for d in tasks[key].depends_on
                       if d.task_key in tasks and d.task_key not in seen]
            depth[key] = 1 + max((depth_of(p, seen | {key}) for p in parents), default=0)
        return depth[key]

    per_depth: dict[int, int] = {}
    for task in job.tasks:
        if task.notebook_path is not None:
            weight = 1
        elif task.for_each is not None and task.for_each.task.notebook_path is not None:
            weight = max(1, task.for_each.concurrency)
        else:
            weight = 0
        level = depth_of(task.task_key)
        per_depth[level] = per_depth.get(level, 0) + weight
    return max(per_depth.values(), default=0)


def run_job(job: JobSpec, overrides: Mapping[str, str], options: RunOptions) -> JobRunResult:
    """Run ``job`` to completion and return its result (it never raises for a task failure)."""
    parameters = resolve_parameters(job, overrides)
    storage_root = storage_root_of(parameters)
    lock = job_lock_path(job, options.runs_root, storage_root)
    queued = time.monotonic()
    with job_run_lock(job, lock, lambda holder: options.observer.job_queued(job, holder)):
        waited = time.monotonic() - queued
        lease = secrets.token_hex(8)
        env, server_pid = _compute_env(storage_root, options, lease)
        server_cpu_before = process_cpu_seconds(server_pid)
        # Runs of this job whose runner died are found here, recorded, notified and summarised.
        for dead in reap_dead_runs(job, options.runs_root, options.notifier):
            options.observer.job_finished(dead)
        run = _Run(job, parameters, options, env)
        if job.max_concurrent_runs <= 1:
            record_lock_holder(lock, run.run_id, run.run_dir, run.start)
        run.checkpoint()  # run.json says RUNNING from the start
        if waited >= 1:
            log.info("job %s run %s waited %.0f s in the queue", job.key, run.run_id, waited)
        options.observer.job_started(job, run.run_id, run.run_dir, run.parameters)
        # Kernels start meanwhile, as many as the job can use at once; at most one per task
        # slot are ever alive, all recycled.
        width = min(options.max_parallel, notebook_width(job))
        kept = options.kernels
        shared = kept if kept and kept.keeps_kernels and kept.env == env else None
        pool = shared or KernelPool(env, run.run_dir, size=min(options.kernel_pool, width),
                                    limit=options.max_parallel)
        run.notices.send(NotificationEvent.ON_START, "RUNNING")
        watchdog = run.notices.watch_duration()
        try:
            _schedule(run, pool)
        finally:
            if pool is not shared:
                pool.close()
            server_cpu = (None if server_pid is None
                          else cpu_delta(server_cpu_before, process_cpu_seconds(server_pid)))
            if options.compute == "warm" and storage_root is not None:
                compute.release_server(storage_root, lease)
            if watchdog is not None:
                watchdog.cancel()
                watchdog.join()  # a warning being sent right now still lands in the run record
        duration = round(time.monotonic() - run.started, 3)
        breaches = _health_breaches(job, duration)
        state = _job_state(run)
        if breaches and watchdog is not None:  # the run ended past the threshold before the timer
            run.notices.warn_duration(state)
        result = JobRunResult(
            job.key, run.run_id, run.run_dir, state, run.tasks, duration,
            run.parameters, started_at=run.start.isoformat(),
            ended_at=datetime.now(UTC).isoformat(), health_breaches=breaches,
            notifications=run.notices.sent, compute_cpu_seconds=server_cpu,
            pid=os.getpid(), pid_started_at=_process_started_at(os.getpid()),
        )
        failed_tasks = result.failure_message().splitlines()[1:]
        # SUCCESS_WITH_FAILURES (a failure the job tolerated: its leaves succeeded) still alerts.
        run.notices.send(NotificationEvent.ON_SUCCESS if result.state == SUCCESS
                         else NotificationEvent.ON_FAILURE, result.state,
                         details=["Failed tasks:", *failed_tasks] if failed_tasks else [])
        write_run_record(result)
        options.observer.job_finished(result)
        return result
