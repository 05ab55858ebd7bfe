"""Job and task notifications, delivered locally where the Jobs service would e-mail or call out.

The Jobs service e-mails the addresses of ``email_notifications`` and calls the destinations of
``webhook_notifications`` on ``on_start``, ``on_success``, ``on_failure`` and
``on_duration_warning_threshold_exceeded``. Locally every notification becomes one JSON line of an
outbox, ``<runs_root>/_notifications/outbox.jsonl``, for a person or a test to read; with
``MEDALLION_NOTIFY_WEBHOOK_URL`` set it is also POSTed there as JSON. Delivery never fails a run:
a notification that cannot be written or posted is logged as a warning.

Three kinds of notification are alerts (``Alert``), which the alert channels of
``medallion.platform.jobs.channels`` also deliver: the job's failure, its SLA breach (the duration
warning of its ``RUN_DURATION_SECONDS`` health rule) and a DQ violation. The last is no event of the
Jobs service: the runner sends it to the job's ``on_failure`` destinations when a task fails with
one of the DQ errors (``DQ_ERRORS``: the DQ breaker's, an ``expect_or_fail`` rule's), naming the
tables and the expectations that failed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import httpx

from medallion.lakehouse.credentials import (
    REDACTED,
    local_secret_values,
    redact,
    stored_local_secrets,
)
from medallion.lakehouse.errors import ExpectationFailed
from medallion.lakehouse.storage import storage_root_of
from medallion.platform.jobs.model import JobSpec, NotificationEvent, Notifications

log = logging.getLogger(__name__)

WEBHOOK_URL_ENV = "MEDALLION_NOTIFY_WEBHOOK_URL"
WEBHOOK_TIMEOUT_SECONDS = 5.0
OUTBOX = Path("_notifications") / "outbox.jsonl"
SECRET_NAME_PARTS = ("secret", "password", "token", "key")
MIN_SECRET_LENGTH = 4
# A task that fails with one of these (the class its notebook's error names) is a DQ violation:
# ExpectationFailed, which the DQ breaker and a pipeline's own checks raise, and its subclass for
# expect_or_fail rules (medallion.lakehouse.quality.engine, not imported: it loads pyspark).
DQ_ERRORS = frozenset({ExpectationFailed.__name__, "ExpectationsFailed"})
# A line of a DQ error that names its table and, when it has one, the failed expectation:
# "silver.orders: order_id_not_null failed (3 unexpected rows)".
_FAILED_CHECK = re.compile(
    r"^\s*(?P<table>[A-Za-z_]\w*\.[A-Za-z_]\w*)\b[^:]*:(?: (?P<check>\w+) failed\b)?"
)

_OUTCOME = {
    "SUCCESS": "succeeded", "SUCCESS_WITH_FAILURES": "succeeded with failures",
    "FAILED": "failed", "TIMEDOUT": "timed out",
    "INTERNAL_ERROR": "broke off (its runner died)",
}


class Alert(StrEnum):
    """The notifications someone must act on, which the alert channels deliver too."""

    JOB_FAILURE = "job_failure"
    SLA_BREACH = "sla_breach"
    DQ_VIOLATION = "dq_violation"


@dataclass(frozen=True)
class Notification:
    """One event of a job (or task) run, addressed to its e-mail recipients and webhook ids."""

    event: NotificationEvent
    job_key: str
    run_id: str
    task_key: str | None
    recipients: tuple[str, ...]
    webhook_ids: tuple[str, ...]
    subject: str
    body: str
    at: str  # UTC, ISO 8601
    alert: Alert | None = None

    def to_json(self) -> dict[str, Any]:
        """The outbox line's fields, as JSON types."""
        return {**asdict(self), "event": self.event.value, "recipients": list(self.recipients),
                "webhook_ids": list(self.webhook_ids),
                "alert": self.alert.value if self.alert else None}


@dataclass(frozen=True)
class DQViolation:
    """What a failed DQ check reported: its error, and each table with its failed expectations."""

    error_class: str
    lines: tuple[str, ...]  # the error's message, line by line
    failed: tuple[tuple[str, tuple[str, ...]], ...]  # (table, expectations) in the order named

    @classmethod
    def of(cls, error_class: str | None, message: str | None) -> DQViolation | None:
        """The violation a task's error reports; None when the error is not a DQ error."""
        if error_class not in DQ_ERRORS or not message:
            return None
        lines = tuple(line.strip() for line in message.splitlines() if line.strip())
        failed: dict[str, list[str]] = {}
        for match in filter(None, map(_FAILED_CHECK.match, lines)):
            checks = failed.setdefault(match["table"], [])
            if match["check"] and match["check"] not in checks:
                checks.append(match["check"])
        return cls(error_class, lines, tuple((t, tuple(c)) for t, c in failed.items()))

    def where(self) -> str:
        """``silver.orders (order_id_not_null, status_valid), silver.customers (...)``."""
        return ", ".join(f"{table} ({', '.join(checks)})" if checks else table
                         for table, checks in self.failed)

    def details(self) -> list[str]:
        """The body's lines: the error as Python prints it."""
        first, *rest = self.lines or ("",)
        return [f"{self.error_class}: {first}", *(f"  {line}" for line in rest)]


class Notifier(Protocol):
    """Delivers notifications; called from the run's threads, so it must be thread-safe."""

    def send(self, notification: Notification) -> None:
        """Deliver ``notification``; log, never raise, when it cannot be delivered."""


class OutboxNotifier:
    """Appends each notification to a JSON-lines outbox and, optionally, POSTs it to a URL."""

    def __init__(self, outbox: Path, webhook_url: str | None = None) -> None:
        self.outbox = outbox
        self.webhook_url = webhook_url
        self._lock = threading.Lock()

    @classmethod
    def for_runs_root(cls, runs_root: Path,
                      environ: Mapping[str, str] | None = None) -> OutboxNotifier:
        """The outbox under ``runs_root``, posting to ``MEDALLION_NOTIFY_WEBHOOK_URL`` if set."""
        env = os.environ if environ is None else environ
        return cls(runs_root / OUTBOX, env.get(WEBHOOK_URL_ENV) or None)

    def send(self, notification: Notification) -> None:
        """One outbox line, then the POST if a webhook URL is configured."""
        line = json.dumps(notification.to_json()) + "\n"
        try:
            self.outbox.parent.mkdir(parents=True, exist_ok=True)
            # One write of one line in append mode: runs of other jobs may append at the same time.
            with self._lock, self.outbox.open("a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError as error:
            log.warning("notification %s of run %s not written to %s: %s",
                        notification.event.value, notification.run_id, self.outbox, error)
        if self.webhook_url:
            _post(self.webhook_url, notification)


def _post(url: str, notification: Notification) -> None:
    try:
        response = httpx.post(url, json=notification.to_json(), timeout=WEBHOOK_TIMEOUT_SECONDS)
        response.raise_for_status()
    except httpx.HTTPError as error:
        # Webhook URLs carry their token in the path (Slack's do): name the host and the failure,
        # never the URL, nor the error's text that quotes it.
        why = (f"HTTP {error.response.status_code}" if isinstance(error, httpx.HTTPStatusError)
               else type(error).__name__)
        log.warning("notification %s of run %s not posted to %s: %s",
                    notification.event.value, notification.run_id, httpx.URL(url).host, why)


def is_secret_name(name: str) -> bool:
    """Whether a parameter's name says its value must never be shown."""
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


def redact_parameters(parameters: Mapping[str, str]) -> dict[str, str]:
    """The parameters with the value of every secret-looking name replaced."""
    return {name: REDACTED if is_secret_name(name) else value
            for name, value in parameters.items()}


def _scrub(text: str, parameters: Mapping[str, str]) -> str:
    # An error message may quote a secret parameter's value or a credential of the secrets
    # provider; neither leaves the run. Values too short to be a secret would only garble the text.
    for name, value in parameters.items():
        if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH:
            text = text.replace(value, REDACTED)
    return redact(text, local_secret_values(stored_local_secrets(storage_root_of(parameters))))


def alert_of(event: NotificationEvent, task_key: str | None) -> Alert | None:
    """The alert a Jobs-service event of the job (``task_key`` None) or of a task is, if any."""
    if task_key is None and event is NotificationEvent.ON_FAILURE:
        return Alert.JOB_FAILURE
    if task_key is None and event is NotificationEvent.ON_DURATION_WARNING:
        return Alert.SLA_BREACH
    return None


def _subject(event: NotificationEvent, job: JobSpec, task_key: str | None, state: str,
             threshold_seconds: float | None, violation: DQViolation | None) -> str:
    if violation is not None:
        where = violation.where() or f"task {task_key}"
        return f"[medallion] DQ violation in {job.name}: {where}"
    what = f"Task {task_key} of {job.name}" if task_key else f"Run of {job.name}"
    if event is NotificationEvent.ON_START:
        happened = "started"
    elif event is NotificationEvent.ON_DURATION_WARNING:
        happened = f"exceeded its duration threshold ({threshold_seconds:g} s)"
    else:
        happened = _OUTCOME.get(state, state.lower())
    return f"[medallion] {what} {happened}"


def compose_notification(
    event: NotificationEvent, job: JobSpec, *, run_id: str, task_key: str | None = None,
    state: str, started_at: str, elapsed_seconds: float, parameters: Mapping[str, str],
    run_dir: Path, details: Sequence[str] = (), threshold_seconds: float | None = None,
    violation: DQViolation | None = None, final: bool = False,
) -> Notification:
    """The notification of ``event``, to the destinations the job (or its task) lists for it.

    With a ``violation``, the DQ-violation alert of ``task_key``'s failure, to the job's
    ``on_failure`` destinations. ``final``: a task's last word, see ``_listed``.
    """
    recipients, webhook_ids = _listed(job, task_key, violation, event, final).destinations(event)
    shown = redact_parameters(parameters)
    lines = [
        f"Job: {job.name} ({job.key})",
        f"Run: {run_id}",
        *([f"Task: {task_key}"] if task_key else []),
        f"State: {state}",
        f"Started: {started_at}",
        f"Elapsed: {elapsed_seconds:.1f} s",
        *([f"Health rule: RUN_DURATION_SECONDS GREATER_THAN {threshold_seconds:g}"]
          if event is NotificationEvent.ON_DURATION_WARNING else []),
        "Parameters: " + (", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "none"),
        f"Notebooks: {run_dir}",
        *details,
        *(["Failed expectations:", *violation.details()] if violation is not None else []),
    ]
    subject = _subject(event, job, task_key, state, threshold_seconds, violation)
    return Notification(
        event=event, job_key=job.key, run_id=run_id, task_key=task_key,
        recipients=recipients, webhook_ids=webhook_ids,
        subject=_scrub(subject, parameters), body=_scrub("\n".join(lines), parameters),
        at=datetime.now(UTC).isoformat(),
        alert=Alert.DQ_VIOLATION if violation is not None else alert_of(event, task_key),
    )


def _listed(job: JobSpec, task_key: str | None, violation: DQViolation | None,
            event: NotificationEvent, final: bool) -> Notifications:
    """Who hears of an event: the task's list, the job's for the job and for a DQ violation.

    A task's final failure reaches the job's ``on_failure`` list when the task lists nobody for
    it: every failed task alerts, also one whose run goes on (a ``run_if: ALL_DONE`` downstream).
    """
    # A DQ violation stops the job's data: whoever hears of the job's failure hears of it.
    if task_key and violation is None:
        own = job.task(task_key).notifications
        if final and event is NotificationEvent.ON_FAILURE and own.destinations(event) == ((), ()):
            return job.notifications
        return own
    return job.notifications


class RunNotifications:
    """The notifications of one run: each event to its destinations, the duration warning once."""

    def __init__(self, job: JobSpec, *, run_id: str, start: datetime, started: float,
                 parameters: Mapping[str, str], run_dir: Path, notifier: Notifier,
                 on_sent: Callable[[Notification], None]) -> None:
        self.job = job
        self.run_id = run_id
        self.start = start
        self.started = started  # time.monotonic() when the run began
        self.parameters = parameters
        self.run_dir = run_dir
        self.notifier = notifier
        self.on_sent = on_sent
        self.sent: list[Notification] = []
        self._duration_warned = False
        self._lock = threading.Lock()

    def send(self, event: NotificationEvent, state: str, *, task_key: str | None = None,
             details: Sequence[str] = (), violation: DQViolation | None = None,
             final: bool = False) -> None:
        """Send ``event`` to the destinations the job (or its task) lists for it, if any.

        ``final``: the task's last word (not a retried attempt's), see ``_listed``.
        """
        if _listed(self.job, task_key, violation, event, final).destinations(event) == ((), ()):
            return
        notification = compose_notification(
            event, self.job, run_id=self.run_id, task_key=task_key, state=state,
            started_at=self.start.isoformat(), elapsed_seconds=time.monotonic() - self.started,
            parameters=self.parameters, run_dir=self.run_dir, details=details,
            threshold_seconds=self.job.duration_threshold_seconds, violation=violation,
            final=final,
        )
        self.notifier.send(notification)
        with self._lock:
            self.sent.append(notification)
        self.on_sent(notification)

    def warn_duration(self, state: str = "RUNNING") -> None:
        """``on_duration_warning_threshold_exceeded``, at most once per run."""
        with self._lock:
            if self._duration_warned:
                return
            self._duration_warned = True
        self.send(NotificationEvent.ON_DURATION_WARNING, state)

    def dq_violation(self, task_key: str, state: str, violation: DQViolation) -> None:
        """The DQ-violation alert of a task that failed a DQ check, to the job's failure list."""
        self.send(NotificationEvent.ON_FAILURE, state, task_key=task_key, violation=violation)

    def watch_duration(self) -> threading.Timer | None:
        """A started timer that sends the duration warning as the health threshold passes.

        None when the job has no ``RUN_DURATION_SECONDS`` rule or nobody to warn. The caller
        cancels and joins it when the run ends.
        """
        threshold = self.job.duration_threshold_seconds
        if threshold is None or self.job.notifications.destinations(
                NotificationEvent.ON_DURATION_WARNING) == ((), ()):
            return None
        elapsed = time.monotonic() - self.started
        watchdog = threading.Timer(max(threshold - elapsed, 0.0), self.warn_duration)
        watchdog.name, watchdog.daemon = f"{self.job.key}-duration-watchdog", True
        watchdog.start()
        return watchdog
