"""Typed views of a resolved bundle job: what the runner needs, parsed once and checked."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from medallion.lakehouse.errors import BundleError


class RunIf(StrEnum):
    """When a task runs, given its dependencies' results (Jobs API ``run_if``)."""

    ALL_SUCCESS = "ALL_SUCCESS"
    AT_LEAST_ONE_SUCCESS = "AT_LEAST_ONE_SUCCESS"
    NONE_FAILED = "NONE_FAILED"
    ALL_DONE = "ALL_DONE"
    AT_LEAST_ONE_FAILED = "AT_LEAST_ONE_FAILED"
    ALL_FAILED = "ALL_FAILED"


class ConditionOp(StrEnum):
    """Operators of a ``condition_task``."""

    EQUAL_TO = "EQUAL_TO"
    NOT_EQUAL = "NOT_EQUAL"
    GREATER_THAN = "GREATER_THAN"
    GREATER_THAN_OR_EQUAL = "GREATER_THAN_OR_EQUAL"
    LESS_THAN = "LESS_THAN"
    LESS_THAN_OR_EQUAL = "LESS_THAN_OR_EQUAL"


@dataclass(frozen=True)
class Dependency:
    """An edge of the task graph; ``outcome`` selects a condition task's branch."""

    task_key: str
    outcome: str | None = None


@dataclass(frozen=True)
class Condition:
    """A ``condition_task``: compares two (reference-resolved) operands."""

    op: ConditionOp
    left: str
    right: str


class NotificationEvent(StrEnum):
    """When the Jobs service notifies: the keys of email_notifications / webhook_notifications."""

    ON_START = "on_start"
    ON_SUCCESS = "on_success"
    ON_FAILURE = "on_failure"
    ON_DURATION_WARNING = "on_duration_warning_threshold_exceeded"


@dataclass(frozen=True)
class Notifications:
    """Who hears about a job or task run: e-mail addresses and webhook destination ids, by event."""

    emails: Mapping[NotificationEvent, tuple[str, ...]] = field(default_factory=dict)
    webhook_ids: Mapping[NotificationEvent, tuple[str, ...]] = field(default_factory=dict)
    # Task-level ``notification_settings``: on_start for the first attempt and on_failure for the
    # last one only; by default the Jobs service alerts on every attempt of a retried task.
    alert_on_last_attempt: bool = False

    def destinations(self, event: NotificationEvent) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The e-mail addresses and the webhook ids to notify of ``event``."""
        return self.emails.get(event, ()), self.webhook_ids.get(event, ())


@dataclass(frozen=True)
class HealthRule:
    """A job health rule, e.g. RUN_DURATION_SECONDS GREATER_THAN 1800."""

    metric: str
    op: str
    value: float


@dataclass(frozen=True)
class ForEach:
    """A ``for_each_task``: runs ``task`` once per item of the JSON list ``inputs``."""

    inputs: str
    task: TaskSpec
    concurrency: int = 1


@dataclass(frozen=True)
class RunJob:
    """A ``run_job_task``: run another job of the bundle (``job_id`` resolves to its key)."""

    job_key: str
    job_parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """One task of a job."""

    task_key: str
    depends_on: tuple[Dependency, ...] = ()
    run_if: RunIf = RunIf.ALL_SUCCESS
    notebook_path: Path | None = None
    base_parameters: Mapping[str, str] = field(default_factory=dict)
    condition: Condition | None = None
    for_each: ForEach | None = None
    run_job: RunJob | None = None
    max_retries: int = 0
    min_retry_interval_millis: int = 0
    retry_on_timeout: bool = False
    timeout_seconds: int = 0
    notifications: Notifications = field(default_factory=Notifications)

    @property
    def kind(self) -> str:
        """``notebook``, ``condition``, ``for_each`` or ``run_job``."""
        if self.condition:
            return "condition"
        if self.run_job:
            return "run_job"
        return "for_each" if self.for_each else "notebook"


@dataclass(frozen=True)
class JobSpec:
    """A job: its tasks, parameters and run-level settings."""

    key: str
    name: str
    tasks: tuple[TaskSpec, ...]
    parameters: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 0
    max_concurrent_runs: int = 1
    queue_enabled: bool = True
    health_rules: tuple[HealthRule, ...] = ()
    notifications: Notifications = field(default_factory=Notifications)

    @property
    def duration_threshold_seconds(self) -> float | None:
        """The tightest ``RUN_DURATION_SECONDS GREATER_THAN`` health rule, if any."""
        values = [rule.value for rule in self.health_rules
                  if rule.metric == "RUN_DURATION_SECONDS" and rule.op == "GREATER_THAN"]
        return min(values, default=None)

    def task(self, task_key: str) -> TaskSpec:
        """The task with this key."""
        for task in self.tasks:
            if task.task_key == task_key:
                return task
        raise BundleError(f"job {self.key!r} has no task {task_key!r}")

    def downstream_of(self, task_key: str) -> list[str]:
        """Tasks that depend on ``task_key`` directly."""
        return [t.task_key for t in self.tasks if any(d.task_key == task_key for d in t.depends_on)]

    def only(self, task_keys: Collection[str]) -> JobSpec:
        """This job with only ``task_keys`` (the Jobs API's ``run-now`` field ``only``).

        Dependencies on tasks left out are dropped: a selected task runs as if they had
        succeeded. A reference to a left-out task's values fails that task, as it would there.
        """
        known = {task.task_key for task in self.tasks}
        unknown = sorted(set(task_keys) - known)
        if unknown or not task_keys:
            raise BundleError(
                f"job {self.key!r}: only expected task keys of the job ({', '.join(sorted(known))})"
                f", found {', '.join(unknown) or 'none'}"
            )
        tasks = tuple(
            replace(task, depends_on=tuple(d for d in task.depends_on if d.task_key in task_keys))
            for task in self.tasks
            if task.task_key in task_keys
        )
        return replace(self, tasks=tasks)


def _int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as error:
        raise BundleError(f"{where}: expected an integer, got {value!r}") from error


def _destination_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BundleError(f"{where}: expected a list, got {value!r}")
    return value


def parse_notifications(raw: Mapping[str, Any], where: str) -> Notifications:
    """``email_notifications`` and ``webhook_notifications`` of a job or a task, typed.

    Keys the local runner has no event for (``on_streaming_backlog_exceeded``,
    ``no_alert_for_skipped_runs``) are accepted and ignored, as the schema allows them.
    """
    emails_raw = raw.get("email_notifications") or {}
    webhooks_raw = raw.get("webhook_notifications") or {}
    emails: dict[NotificationEvent, tuple[str, ...]] = {}
    webhook_ids: dict[NotificationEvent, tuple[str, ...]] = {}
    for event in NotificationEvent:
        if emails_raw.get(event.value):
            addresses = _destination_list(emails_raw[event.value],
                                          f"{where}.email_notifications.{event.value}")
            emails[event] = tuple(str(address) for address in addresses)
        if webhooks_raw.get(event.value):
            at = f"{where}.webhook_notifications.{event.value}"
            hooks = _destination_list(webhooks_raw[event.value], at)
            if not all(isinstance(hook, Mapping) and hook.get("id") for hook in hooks):
                raise BundleError(f"{at}: expected a list of {{id: <destination id>}}, "
                                  f"got {hooks!r}")
            webhook_ids[event] = tuple(str(hook["id"]) for hook in hooks)
    settings = raw.get("notification_settings") or {}
    return Notifications(emails=emails, webhook_ids=webhook_ids,
                         alert_on_last_attempt=bool(settings.get("alert_on_last_attempt", False)))


def parse_task(raw: Mapping[str, Any], job_key: str) -> TaskSpec:
    """Build a TaskSpec from a resolved task mapping."""
    key = str(raw["task_key"])
    where = f"resources.jobs.{job_key}.tasks[{key}]"
    depends = tuple(
        Dependency(str(dep["task_key"]), str(dep["outcome"]) if "outcome" in dep else None)
        for dep in raw.get("depends_on", [])
    )
    notebook_path = None
    base_parameters: dict[str, str] = {}
    condition = None
    for_each = None
    run_job = None
    if "for_each_task" in raw:
        loop = raw["for_each_task"]
        for_each = ForEach(
            inputs=loop["inputs"] if isinstance(loop["inputs"], str)
            else json.dumps(loop["inputs"]),
            task=parse_task(loop["task"], job_key),
            concurrency=_int(loop.get("concurrency", 1), f"{where}.for_each_task.concurrency"),
        )
        if for_each.task.kind not in {"notebook", "run_job"}:
            raise BundleError(f"{where}.for_each_task.task: the local runner loops over "
                              "notebook and run_job tasks only")
    elif "notebook_task" in raw:
        notebook = raw["notebook_task"]
        notebook_path = Path(notebook["notebook_path"])
        base_parameters = {str(k): str(v) for k, v in notebook.get("base_parameters", {}).items()}
    elif "condition_task" in raw:
        cond = raw["condition_task"]
        condition = Condition(ConditionOp(cond["op"]), str(cond["left"]), str(cond["right"]))
    elif "run_job_task" in raw:
        spec = raw["run_job_task"]
        run_job = RunJob(
            job_key=str(spec["job_id"]),
            job_parameters={str(k): str(v) for k, v in (spec.get("job_parameters") or {}).items()},
        )
    else:
        kinds = sorted(k for k in raw if k.endswith("_task"))
        raise BundleError(
            f"{where}: the local runner runs notebook_task, condition_task, for_each_task and "
            f"run_job_task; found {kinds or 'no task type'}"
        )
    return TaskSpec(
        task_key=key,
        depends_on=depends,
        run_if=RunIf(raw.get("run_if", "ALL_SUCCESS")),
        notebook_path=notebook_path,
        base_parameters=base_parameters,
        condition=condition,
        for_each=for_each,
        run_job=run_job,
        max_retries=_int(raw.get("max_retries", 0), f"{where}.max_retries"),
        min_retry_interval_millis=_int(
            raw.get("min_retry_interval_millis", 0), f"{where}.min_retry_interval_millis"
        ),
        retry_on_timeout=bool(raw.get("retry_on_timeout", False)),
        timeout_seconds=_int(raw.get("timeout_seconds", 0), f"{where}.timeout_seconds"),
        notifications=parse_notifications(raw, where),
    )


def parse_job(job_key: str, raw: Mapping[str, Any]) -> JobSpec:
    """Build a JobSpec from a resolved bundle job mapping."""
    tasks = tuple(parse_task(task, job_key) for task in raw.get("tasks", []))
    parameters = {str(p["name"]): str(p.get("default", "")) for p in raw.get("parameters", [])}
    queue = raw.get("queue") or {}
    rules = tuple(
        HealthRule(str(rule["metric"]), str(rule["op"]), float(rule["value"]))
        for rule in (raw.get("health") or {}).get("rules", [])
    )
    return JobSpec(
        key=job_key,
        name=str(raw.get("name", job_key)),
        tasks=tasks,
        parameters=parameters,
        timeout_seconds=_int(raw.get("timeout_seconds", 0), f"resources.jobs.{job_key}"),
        max_concurrent_runs=_int(raw.get("max_concurrent_runs", 1), f"resources.jobs.{job_key}"),
        queue_enabled=bool(queue.get("enabled", True)),
        health_rules=rules,
        notifications=parse_notifications(raw, f"resources.jobs.{job_key}"),
    )
