"""Job and task notifications, delivered locally where the Jobs service would e-mail or call out.

The Jobs service e-mails the addresses of ``email_notifications`` and calls the destinations of
``webhook_notifications`` on ``on_start``, ``on_success``, ``on_failure`` and
``on_duration_warning_threshold_exceeded``. Locally every notification becomes one JSON line of an
outbox, ``<runs_root>/_notifications/outbox.jsonl``, for a person or a test to read; with
``MEDALLION_NOTIFY_WEBHOOK_URL`` set it is also POSTed there as JSON. Delivery never fails a run:
a notification that cannot be written or posted is logged as a warning.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from medallion.credentials import REDACTED, local_secret_values, redact, stored_local_secrets
from medallion.jobs.model import JobSpec, NotificationEvent

log = logging.getLogger(__name__)

WEBHOOK_URL_ENV = "MEDALLION_NOTIFY_WEBHOOK_URL"
WEBHOOK_TIMEOUT_SECONDS = 5.0
OUTBOX = Path("_notifications") / "outbox.jsonl"
SECRET_NAME_PARTS = ("secret", "password", "token", "key")
MIN_SECRET_LENGTH = 4

_OUTCOME = {
    "SUCCESS": "succeeded", "SUCCESS_WITH_FAILURES": "succeeded with failures",
    "FAILED": "failed", "TIMEDOUT": "timed out",
}


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

    def to_json(self) -> dict[str, Any]:
        """The outbox line's fields, as JSON types."""
        return {**asdict(self), "event": self.event.value, "recipients": list(self.recipients),
                "webhook_ids": list(self.webhook_ids)}


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
    return redact(text, local_secret_values(stored_local_secrets(parameters.get("storage_root"))))


def _subject(event: NotificationEvent, job: JobSpec, task_key: str | None, state: str,
             threshold_seconds: float | None) -> str:
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
) -> Notification:
    """The notification of ``event``, to the destinations the job (or its task) lists for it."""
    notifications = job.task(task_key).notifications if task_key else job.notifications
    recipients, webhook_ids = notifications.destinations(event)
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
    ]
    return Notification(
        event=event, job_key=job.key, run_id=run_id, task_key=task_key,
        recipients=recipients, webhook_ids=webhook_ids,
        subject=_scrub(_subject(event, job, task_key, state, threshold_seconds), parameters),
        body=_scrub("\n".join(lines), parameters),
        at=datetime.now(UTC).isoformat(),
    )


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
             details: Sequence[str] = ()) -> None:
        """Send ``event`` to the destinations the job (or its task) lists for it, if any."""
        listed = self.job.task(task_key).notifications if task_key else self.job.notifications
        if listed.destinations(event) == ((), ()):
            return
        notification = compose_notification(
            event, self.job, run_id=self.run_id, task_key=task_key, state=state,
            started_at=self.start.isoformat(), elapsed_seconds=time.monotonic() - self.started,
            parameters=self.parameters, run_dir=self.run_dir, details=details,
            threshold_seconds=self.job.duration_threshold_seconds,
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
