"""Job and task notifications: sent when the Jobs service would send them, delivered to an outbox.

Each job run costs a kernel start, so the three runs are shared by the tests of this module.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from rich.console import Console

from medallion.lakehouse.errors import BundleError
from medallion.platform.bundle import load_bundle
from medallion.platform.jobs import JobRunResult, RunOptions, run_job
from medallion.platform.jobs.model import NotificationEvent, Notifications, parse_job
from medallion.platform.jobs.notifications import (
    OUTBOX,
    WEBHOOK_URL_ENV,
    Notification,
    OutboxNotifier,
    compose_notification,
)
from medallion.platform.jobs.progress import ConsoleProgress
from tests.platform.jobs.conftest import FIXTURE_BUNDLE

ON_START, ON_SUCCESS, ON_FAILURE = "on_start", "on_success", "on_failure"
ON_DURATION_WARNING = "on_duration_warning_threshold_exceeded"


class Observed(NamedTuple):
    """A finished run and what the console printed while it ran."""

    result: JobRunResult
    console: str


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One runs root, hence one outbox, for every run of this module."""
    return tmp_path_factory.mktemp("notify") / "runs"


def _run(job_key: str, runs_root: Path) -> Observed:
    printed = io.StringIO()
    bundle = load_bundle(FIXTURE_BUNDLE)
    job = parse_job(job_key, bundle.jobs[job_key])
    options = RunOptions(runs_root=runs_root, compute="cold", kernel_pool=1,
                         observer=ConsoleProgress(Console(file=printed, width=200)))
    result = run_job(job, {"marker_dir": str(runs_root.parent / "markers")}, options)
    return Observed(result, printed.getvalue())


@pytest.fixture(scope="module")
def good_run(runs_root: Path) -> Observed:
    """``notify_job``: one quick task, well under its 120 s duration threshold."""
    return _run("notify_job", runs_root)


@pytest.fixture(scope="module")
def slow_run(runs_root: Path) -> Observed:
    """``slow_notify_job``: a 2 s nap (after a kernel start) against a 1 s duration threshold."""
    return _run("slow_notify_job", runs_root)


@pytest.fixture(scope="module")
def failed_run(runs_root: Path) -> Observed:
    """``failing_notify_job``: its only task raises."""
    return _run("failing_notify_job", runs_root)


@pytest.fixture(scope="module")
def retried_run(runs_root: Path) -> Observed:
    """``retry_notify_job``: its task fails once, then succeeds on the retry."""
    return _run("retry_notify_job", runs_root)


@pytest.fixture(scope="module")
def tolerated_run(runs_root: Path) -> Observed:
    """``tolerated_failure_job``: its first task raises; its leaf runs regardless (ALL_DONE)."""
    return _run("tolerated_failure_job", runs_root)


def outbox(result: JobRunResult) -> list[dict[str, Any]]:
    """The outbox lines of this run."""
    lines = (result.run_dir.parents[1] / OUTBOX).read_text().splitlines()
    return [line for line in map(json.loads, lines) if line["run_id"] == result.run_id]


def sent(result: JobRunResult) -> list[tuple[str | None, str, list[str], list[str]]]:
    """(task, event, e-mail recipients, webhook ids) of each outbox line of this run."""
    return [(n["task_key"], n["event"], n["recipients"], n["webhook_ids"])
            for n in outbox(result)]


def test_good_run_notifies_start_and_success(good_run: Observed) -> None:
    result = good_run.result

    assert result.state == "SUCCESS"
    assert sent(result) == [
        (None, ON_START, ["data-team@example.com"], []),
        (None, ON_SUCCESS, ["data-team@example.com"], []),
    ]
    assert [n["subject"] for n in outbox(result)] == [
        "[medallion] Run of notify_job started",
        "[medallion] Run of notify_job succeeded",
    ]
    assert [n["alert"] for n in outbox(result)] == [None, None]


def test_run_under_its_duration_threshold_sends_no_warning(good_run: Observed) -> None:
    result = good_run.result

    assert result.health_breaches == []
    assert ON_DURATION_WARNING not in [n["event"] for n in outbox(result)]


def test_failed_run_notifies_the_task_and_the_job_failure_destinations(
    failed_run: Observed,
) -> None:
    result = failed_run.result

    assert result.state == "FAILED"
    assert sent(result) == [
        ("breaks", ON_FAILURE, ["source-owner@example.com"], []),
        (None, ON_FAILURE, ["oncall@example.com"], ["slack-oncall"]),
    ]
    task_failure, job_failure = outbox(result)
    assert (task_failure["alert"], job_failure["alert"]) == (None, "job_failure")
    assert task_failure["subject"] == "[medallion] Task breaks of failing_notify_job failed"
    assert "ValueError: the source table is empty" in task_failure["body"]
    assert job_failure["subject"] == "[medallion] Run of failing_notify_job failed"
    assert f"  task 'breaks' FAILED after 1 attempt(s): {result.tasks['breaks'].error}" in (
        job_failure["body"].splitlines()
    )


def test_retried_task_notifies_every_attempt(retried_run: Observed) -> None:
    result = retried_run.result

    assert result.tasks["flaky"].attempts == 2
    assert [(n["task_key"], n["event"]) for n in outbox(result)] == [
        ("flaky", ON_START), ("flaky", ON_FAILURE), ("flaky", ON_START), ("flaky", ON_SUCCESS),
    ]
    assert "Attempt 1 of 2, retrying" in outbox(result)[1]["body"].splitlines()


def test_duration_warning_is_sent_once_while_the_run_is_still_going(slow_run: Observed) -> None:
    result = slow_run.result

    warnings = [n for n in outbox(result) if n["event"] == ON_DURATION_WARNING]

    assert len(warnings) == 1
    warning = warnings[0]
    assert warning["alert"] == "sla_breach"
    assert warning["recipients"] == ["oncall@example.com"]
    assert warning["webhook_ids"] == ["slack-oncall"]
    assert warning["subject"] == (
        "[medallion] Run of slow_notify_job exceeded its duration threshold (1 s)"
    )
    sent_at = datetime.fromisoformat(warning["at"])
    assert (sent_at - datetime.fromisoformat(result.started_at)).total_seconds() > 1
    # Not an end-of-run check: the nap alone outlasts the warning by more than a second.
    assert (datetime.fromisoformat(result.ended_at) - sent_at).total_seconds() > 1
    assert len(result.health_breaches) == 1  # the end-of-run check stays


def test_run_record_keeps_the_notifications_it_sent(failed_run: Observed) -> None:
    result = failed_run.result

    record = json.loads((result.run_dir / "run.json").read_text())

    assert record["notifications"] == outbox(result)
    assert [n.to_json() for n in result.notifications] == outbox(result)


def test_console_prints_one_line_per_notification(good_run: Observed) -> None:
    lines = [line.split("s   ", 1)[1] for line in good_run.console.splitlines() if "✉" in line]

    assert lines == [
        "✉ on_start → data-team@example.com: [medallion] Run of notify_job started",
        "✉ on_success → data-team@example.com: [medallion] Run of notify_job succeeded",
    ]


def test_runner_reads_email_and_webhook_notifications_of_jobs_and_tasks() -> None:
    job = parse_job("daily", {
        "email_notifications": {"on_failure": ["oncall@example.com"],
                                "no_alert_for_skipped_runs": True},
        "webhook_notifications": {"on_duration_warning_threshold_exceeded": [{"id": "pager"}]},
        "tasks": [{
            "task_key": "load", "notebook_task": {"notebook_path": "load.ipynb"},
            "email_notifications": {"on_start": ["owner@example.com"]},
            "notification_settings": {"alert_on_last_attempt": True},
        }],
    })

    assert job.notifications == Notifications(
        emails={NotificationEvent.ON_FAILURE: ("oncall@example.com",)},
        webhook_ids={NotificationEvent.ON_DURATION_WARNING: ("pager",)},
    )
    assert job.task("load").notifications == Notifications(
        emails={NotificationEvent.ON_START: ("owner@example.com",)}, alert_on_last_attempt=True,
    )


def test_webhook_notification_without_a_destination_id_fails_at_parse() -> None:
    with pytest.raises(BundleError) as raised:
        parse_job("daily", {"webhook_notifications": {"on_failure": ["pager"]}, "tasks": []})

    assert str(raised.value) == (
        "resources.jobs.daily.webhook_notifications.on_failure: expected a list of "
        "{id: <destination id>}, got ['pager']"
    )


def test_notification_never_shows_a_secret_parameter_value(tmp_path: Path) -> None:
    job = parse_job("daily", {"email_notifications": {"on_failure": ["oncall@example.com"]},
                              "tasks": []})

    notification = compose_notification(
        NotificationEvent.ON_FAILURE, job, run_id="r1", state="FAILED",
        started_at="2026-11-26T00:00:00+00:00", elapsed_seconds=3.0,
        parameters={"run_date": "2026-11-26", "crm_api_key": "k-9f8e7d", "DB_PASSWORD": "hunter22"},
        run_dir=tmp_path, details=["Error: login as admin/hunter22 refused"],
    )

    assert "Parameters: DB_PASSWORD=[REDACTED], crm_api_key=[REDACTED], run_date=2026-11-26" in (
        notification.body.splitlines()
    )
    assert "Error: login as admin/[REDACTED] refused" in notification.body.splitlines()
    assert "hunter22" not in notification.body
    assert "k-9f8e7d" not in notification.body


def test_notification_never_shows_a_credential_of_the_secrets_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDALLION_CRM_TOKEN", "crm-tok-5150")
    job = parse_job("daily", {"email_notifications": {"on_failure": ["oncall@example.com"]},
                              "tasks": []})

    notification = compose_notification(
        NotificationEvent.ON_FAILURE, job, run_id="r1", state="FAILED",
        started_at="2026-11-26T00:00:00+00:00", elapsed_seconds=3.0,
        parameters={"run_date": "2026-11-26"}, run_dir=tmp_path,
        details=["Error: HTTP 401 for bearer crm-tok-5150"],
    )

    assert "Error: HTTP 401 for bearer [REDACTED]" in notification.body.splitlines()


def _notification() -> Notification:
    return Notification(
        event=NotificationEvent.ON_FAILURE, job_key="daily", run_id="r1", task_key=None,
        recipients=("oncall@example.com",), webhook_ids=("pager",),
        subject="[medallion] Run of daily failed", body="Job: daily", at="2026-11-26T00:00:00",
    )


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that keeps the JSON of every POST it receives."""
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_notification_is_posted_to_the_webhook_url_from_the_environment(
    tmp_path: Path, webhook_receiver: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = webhook_receiver
    monkeypatch.setenv(WEBHOOK_URL_ENV, url)

    OutboxNotifier.for_runs_root(tmp_path).send(_notification())

    assert received == [_notification().to_json()]
    assert json.loads((tmp_path / OUTBOX).read_text()) == _notification().to_json()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_webhook_is_logged_and_the_outbox_still_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = _closed_port()
    notifier = OutboxNotifier(tmp_path / OUTBOX, f"http://127.0.0.1:{port}/hook")

    with caplog.at_level(logging.WARNING, logger="medallion.platform.jobs.notifications"):
        notifier.send(_notification())

    assert [r.getMessage() for r in caplog.records] == [
        "notification on_failure of run r1 not posted to 127.0.0.1: ConnectError"
    ]
    assert (tmp_path / OUTBOX).read_text().count("\n") == 1


def test_a_tolerated_failure_exits_0_and_still_alerts_the_job_failure_destinations(
    tolerated_run: Observed,
) -> None:
    result = tolerated_run.result

    assert (result.state, result.exit_code) == ("SUCCESS_WITH_FAILURES", 0)
    # The task lists nobody: its failure goes to the job's on_failure list; then the run's.
    assert sent(result) == [
        ("optional_source", ON_FAILURE, ["oncall@example.com"], ["slack-oncall"]),
        (None, ON_FAILURE, ["oncall@example.com"], ["slack-oncall"]),
    ]
    task_failure, job_failure = outbox(result)
    assert task_failure["subject"] == (
        "[medallion] Task optional_source of tolerated_failure_job failed"
    )
    assert "ValueError: the source table is empty" in task_failure["body"]
    assert job_failure["alert"] == "job_failure"
    assert "State: SUCCESS_WITH_FAILURES" in job_failure["body"].splitlines()
