"""Alert channels: a Slack-compatible webhook and SMTP e-mail, against local receivers.

The Slack receiver is a stdlib HTTP server that answers with the statuses it is told to; the SMTP
server is aiosmtpd. Job runs cost a kernel start each, so each run is shared by the tests that
read it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pytest
from rich.console import Console

from medallion.lakehouse.credentials import ALERT_SETTING_KEYS, KEYS, REDACTED, env_name
from medallion.platform.bundle import load_bundle
from medallion.platform.jobs import JobRunResult, RunOptions, run_job
from medallion.platform.jobs.channels import (
    SLACK_WEBHOOK_KEY,
    SMTP_HOST_KEY,
    SMTP_PASSWORD_KEY,
    SMTP_STARTTLS_KEY,
    AlertingNotifier,
    SlackChannel,
    SmtpChannel,
    SmtpSettings,
    configured_channels,
    slack_text,
)
from medallion.platform.jobs.model import NotificationEvent, parse_job
from medallion.platform.jobs.notifications import (
    DQ_ERRORS,
    OUTBOX,
    Alert,
    DQViolation,
    Notification,
    OutboxNotifier,
    compose_notification,
)
from medallion.platform.jobs.progress import ConsoleProgress
from tests.platform.jobs.conftest import FIXTURE_BUNDLE
from tests.support.alert_receivers import (
    SENDER,
    SMTP_PASSWORD,
    SMTP_USER,
    TOKEN,
    Hook,
    SmtpServer,
    alert_secrets,
    free_port,
    serving_hook,
    serving_smtp,
)

ALERT_ENV = [env_name(key) for key in (*KEYS, *ALERT_SETTING_KEYS) if key.startswith("alert-")]


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A Slack-compatible webhook on a free local port."""
    with serving_hook() as served:
        yield served


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A local SMTP server (aiosmtpd) that accepts ``SMTP_USER``'s login."""
    with serving_smtp() as served:
        yield served


@pytest.fixture(autouse=True)
def no_alertalert_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the secrets a test sets configure a channel."""
    for name in ALERT_ENV:
        monkeypatch.delenv(name, raising=False)


def _alert(**changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "event": NotificationEvent.ON_FAILURE, "job_key": "daily", "run_id": "r1",
        "task_key": None, "recipients": ("oncall@example.com", "owner@example.com"),
        "webhook_ids": ("pager",), "subject": "[medallion] Run of daily failed",
        "body": "Job: daily (daily)\nRun: r1\nState: FAILED", "at": "2026-11-26T00:00:00+00:00",
        "alert": Alert.JOB_FAILURE,
    }
    return Notification(**{**fields, **changes})


def _no_secret_in(records: list[logging.LogRecord]) -> bool:
    text = "\n".join(record.getMessage() for record in records)
    return not any(secret in text for secret in (TOKEN, SMTP_PASSWORD))


# --- Slack ------------------------------------------------------------------------------------


def test_slack_posts_the_alerts_subject_and_body_lines(hook: Hook) -> None:
    SlackChannel(hook.url).send(_alert())

    assert hook.received == [(f"/services/{TOKEN}", {
        "text": "[medallion] Run of daily failed\n```\nJob: daily (daily)\nRun: r1\n"
                "State: FAILED\n```",
    })]


def test_slack_posts_alerts_only(hook: Hook) -> None:
    channel = SlackChannel(hook.url)

    channel.send(_alert(event=NotificationEvent.ON_START, alert=None))
    channel.send(_alert(event=NotificationEvent.ON_SUCCESS, alert=None))
    channel.send(_alert(event=NotificationEvent.ON_DURATION_WARNING, alert=Alert.SLA_BREACH))

    assert len(hook.received) == 1


def test_slack_text_escapes_what_slack_would_read_as_markup() -> None:
    notification = _alert(subject="[medallion] <!channel> R&D failed",
                          body="Error: expected a > b\n```injected```")

    assert slack_text(notification) == (
        "[medallion] &lt;!channel&gt; R&amp;D failed\n```\n"
        "Error: expected a &gt; b\n'''injected'''\n```"
    )


def test_slack_retries_a_503_then_delivers_once(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.statuses = [503]
    waits: list[float] = []

    with caplog.at_level(logging.DEBUG):
        SlackChannel(hook.url, sleep=waits.append).send(_alert())

    assert hook.payloads() == [{"text": slack_text(_alert())}] * 2
    assert waits == [0.5]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert caplog.records  # httpx logged its requests, masked
    assert _no_secret_in(caplog.records)


def test_slack_gives_up_after_three_attempts_and_says_so_without_the_url(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.statuses = [500, 502, 429]
    waits: list[float] = []

    with caplog.at_level(logging.DEBUG):
        SlackChannel(hook.url, sleep=waits.append).send(_alert())

    assert len(hook.received) == 3
    assert waits == [0.5, 1.0]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "alert channel slack: job_failure (on_failure) of job daily run r1 not delivered: "
        "HTTP 429 after 3 attempt(s)"
    ]
    assert _no_secret_in(caplog.records)


def test_slack_does_not_retry_a_client_error(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.statuses = [404]

    with caplog.at_level(logging.WARNING, logger="medallion.platform.jobs.channels"):
        SlackChannel(hook.url, sleep=lambda _: None).send(_alert())

    assert len(hook.received) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "alert channel slack: job_failure (on_failure) of job daily run r1 not delivered: "
        "HTTP 404 after 1 attempt(s)"
    ]


def test_slack_retries_a_refused_connection(caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []
    url = f"http://127.0.0.1:{free_port()}/services/{TOKEN}"

    with caplog.at_level(logging.DEBUG):
        SlackChannel(url, sleep=waits.append).send(_alert())

    assert waits == [0.5, 1.0]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "alert channel slack: job_failure (on_failure) of job daily run r1 not delivered: "
        "ConnectError after 3 attempt(s)"
    ]
    assert _no_secret_in(caplog.records)


# --- SMTP -------------------------------------------------------------------------------------


def _smtp(port: int, **changes: Any) -> SmtpChannel:
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": port, "sender": SENDER}
    return SmtpChannel(SmtpSettings(**{**settings, **changes}))


def test_smtp_mails_the_alert_to_its_recipients(smtp_server: SmtpServer) -> None:
    _smtp(smtp_server.port).send(_alert())

    (envelope,) = smtp_server.mailbox.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == ["oncall@example.com", "owner@example.com"]
    (message,) = smtp_server.mailbox.messages()
    assert (message["Subject"], message["From"], message["To"]) == (
        "[medallion] Run of daily failed", SENDER, "oncall@example.com, owner@example.com"
    )
    assert message.get_content().splitlines() == ["Job: daily (daily)", "Run: r1", "State: FAILED"]
    assert smtp_server.mailbox.logins == []


def test_smtp_mails_alerts_with_recipients_only(smtp_server: SmtpServer) -> None:
    channel = _smtp(smtp_server.port)

    channel.send(_alert(event=NotificationEvent.ON_SUCCESS, alert=None))
    channel.send(_alert(recipients=()))
    channel.send(_alert(event=NotificationEvent.ON_DURATION_WARNING, alert=Alert.SLA_BREACH))

    assert [m["Subject"] for m in smtp_server.mailbox.messages()] == [
        "[medallion] Run of daily failed"
    ]


def test_smtp_logs_in_when_a_user_is_set(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        _smtp(smtp_server.port, user=SMTP_USER, password=SMTP_PASSWORD).send(_alert())

    assert smtp_server.mailbox.logins == [(SMTP_USER, SMTP_PASSWORD)]
    assert len(smtp_server.mailbox.envelopes) == 1
    assert _no_secret_in(caplog.records)


def test_smtp_refused_login_is_logged_without_the_password(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        _smtp(smtp_server.port, user=SMTP_USER, password="wrong-" + SMTP_PASSWORD).send(_alert())

    assert smtp_server.mailbox.envelopes == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "alert channel smtp: job_failure (on_failure) of job daily run r1 not delivered: "
        f"SMTPAuthenticationError 535 from 127.0.0.1:{smtp_server.port}"
    ]
    assert _no_secret_in(caplog.records)


def test_smtp_with_starttls_never_logs_in_over_plain_text(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    channel = _smtp(smtp_server.port, user=SMTP_USER, password=SMTP_PASSWORD, starttls=True)

    with caplog.at_level(logging.WARNING, logger="medallion.platform.jobs.channels"):
        channel.send(_alert())  # the local server offers no STARTTLS

    assert (smtp_server.mailbox.logins, smtp_server.mailbox.envelopes) == ([], [])
    assert [r.getMessage() for r in caplog.records] == [
        "alert channel smtp: job_failure (on_failure) of job daily run r1 not delivered: "
        f"SMTPNotSupportedError from 127.0.0.1:{smtp_server.port}"
    ]


def test_smtp_refused_message_is_logged(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.mailbox.refuse_data = "554 Transaction failed: spam"

    with caplog.at_level(logging.WARNING, logger="medallion.platform.jobs.channels"):
        _smtp(smtp_server.port).send(_alert(alert=Alert.DQ_VIOLATION))

    assert [r.getMessage() for r in caplog.records] == [
        "alert channel smtp: dq_violation (on_failure) of job daily run r1 not delivered: "
        f"SMTPDataError 554 from 127.0.0.1:{smtp_server.port}"
    ]


# --- configuration ----------------------------------------------------------------------------


def test_no_alert_secrets_configure_no_channel() -> None:
    assert configured_channels() == []


def test_alert_secrets_configure_both_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in alert_secrets("https://hooks.example.com/services/" + TOKEN, 2525).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(env_name(SMTP_STARTTLS_KEY), "true")

    slack, smtp = configured_channels()

    assert isinstance(slack, SlackChannel)
    assert repr(slack) == "SlackChannel(host='hooks.example.com')"
    assert isinstance(smtp, SmtpChannel)
    assert smtp.settings == SmtpSettings("127.0.0.1", 2525, SENDER, SMTP_USER, SMTP_PASSWORD,
                                         starttls=True)
    assert SMTP_PASSWORD not in repr(smtp.settings)


def test_smtp_host_without_a_sender_is_not_configured_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(env_name(SMTP_HOST_KEY), "smtp.example.com")

    with caplog.at_level(logging.WARNING, logger="medallion.platform.jobs.channels"):
        channels = configured_channels()

    assert channels == []
    assert [r.getMessage() for r in caplog.records] == [
        "alert channel smtp not configured: expected secrets alert-smtp-from (an address) and "
        "alert-smtp-port (a number, or none for 25), found no sender"
    ]


def test_alert_credentials_are_redacted_from_notifications(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://hooks.example.com/services/{TOKEN}"
    monkeypatch.setenv(env_name(SLACK_WEBHOOK_KEY), url)
    monkeypatch.setenv(env_name(SMTP_PASSWORD_KEY), SMTP_PASSWORD)
    job = parse_job("daily", {"email_notifications": {"on_failure": ["oncall@example.com"]},
                              "tasks": []})

    notification = compose_notification(
        NotificationEvent.ON_FAILURE, job, run_id="r1", state="FAILED",
        started_at="2026-11-26T00:00:00+00:00", elapsed_seconds=3.0, parameters={},
        run_dir=tmp_path, details=[f"Error: POST {url} failed", f"Error: login {SMTP_PASSWORD}"],
    )

    assert notification.body.splitlines()[-2:] == [
        f"Error: POST {REDACTED} failed", f"Error: login {REDACTED}"
    ]


def test_a_broken_channel_stops_neither_the_outbox_nor_the_next_channel(
    tmp_path: Path, hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        name: ClassVar[str] = "broken"

        def send(self, notification: Notification) -> None:
            raise RuntimeError("a bug")

    notifier = AlertingNotifier(OutboxNotifier(tmp_path / OUTBOX),
                                [Broken(), SlackChannel(hook.url)])

    with caplog.at_level(logging.WARNING, logger="medallion.platform.jobs.channels"):
        notifier.send(_alert())

    assert json.loads((tmp_path / OUTBOX).read_text()) == _alert().to_json()
    assert len(hook.received) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "alert channel broken: job_failure (on_failure) of job daily run r1 not delivered: "
        "RuntimeError"
    ]


# --- DQ violations ----------------------------------------------------------------------------


BREAKER_MESSAGE = (
    "DQ breaker (silver): 3 critical check(s) failed; downstream tasks must not run:\n"
    "  silver.orders: order_id_not_null failed (3 unexpected rows)\n"
    "  silver.orders: status_valid failed (1 unexpected rows)\n"
    "  silver.customers: row_count_in_bounds failed (observed 0)"
)


def test_a_breaker_error_is_a_dq_violation_naming_tables_and_expectations() -> None:
    violation = DQViolation.of("ExpectationFailed", BREAKER_MESSAGE)

    assert violation is not None
    assert violation.failed == (
        ("silver.orders", ("order_id_not_null", "status_valid")),
        ("silver.customers", ("row_count_in_bounds",)),
    )
    assert violation.where() == (
        "silver.orders (order_id_not_null, status_valid), silver.customers (row_count_in_bounds)"
    )


def test_an_expect_or_fail_error_is_a_dq_violation_naming_its_table() -> None:
    violation = DQViolation.of(
        "ExpectationsFailed",
        "silver.orders: expected every expect_or_fail rule to pass, found 1 failing: "
        "amount_positive (amount > 0) failed for 2 of 10 rows",
    )

    assert violation is not None
    assert violation.where() == "silver.orders"


def test_dq_errors_are_the_classes_the_breaker_and_the_rules_raise() -> None:
    from medallion.lakehouse.errors import ExpectationFailed
    from medallion.lakehouse.quality.engine import (
        ExpectationsFailed,  # imports pyspark, starts no Spark
    )

    assert {ExpectationFailed.__name__, ExpectationsFailed.__name__} == DQ_ERRORS


def test_other_errors_are_no_dq_violation() -> None:
    assert DQViolation.of("ValueError", "silver.orders: order_id_not_null failed") is None
    assert DQViolation.of(None, None) is None


# --- job runs with the channels configured ----------------------------------------------------


class AlertedRun(NamedTuple):
    """A finished run, its outbox lines, and what each channel received during it."""

    result: JobRunResult
    outbox: list[dict[str, Any]]
    slack: list[dict[str, Any]]
    emails: list[EmailMessage]
    rcpt_tos: list[list[str]]


def _run(job_key: str, runs_root: Path, env: Mapping[str, str]) -> JobRunResult:
    bundle = load_bundle(FIXTURE_BUNDLE)
    job = parse_job(job_key, bundle.jobs[job_key])
    options = RunOptions(runs_root=runs_root, compute="cold", kernel_pool=1,
                         observer=ConsoleProgress(Console(file=io.StringIO(), width=200)))
    with pytest.MonkeyPatch.context() as patch:
        for name in ALERT_ENV:
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        return run_job(job, {"marker_dir": str(runs_root.parent / "markers")}, options)


def outbox(result: JobRunResult) -> list[dict[str, Any]]:
    """The outbox lines of this run."""
    lines = (result.run_dir.parents[1] / OUTBOX).read_text().splitlines()
    return [line for line in map(json.loads, lines) if line["run_id"] == result.run_id]


def _alerted_run(job_key: str, runs_root: Path) -> AlertedRun:
    with serving_hook() as served_hook, serving_smtp() as served_smtp:
        result = _run(job_key, runs_root, alert_secrets(served_hook.url, served_smtp.port))
        return AlertedRun(result, outbox(result), served_hook.payloads(),
                          served_smtp.mailbox.messages(),
                          [list(e.rcpt_tos) for e in served_smtp.mailbox.envelopes])


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One runs root, hence one outbox, for every run of this module."""
    return tmp_path_factory.mktemp("alerts") / "runs"


@pytest.fixture(scope="module")
def failed_run(runs_root: Path) -> AlertedRun:
    """``failing_notify_job``: its only task raises."""
    return _alerted_run("failing_notify_job", runs_root)


@pytest.fixture(scope="module")
def dq_run(runs_root: Path) -> AlertedRun:
    """``dq_alert_job``: its silver DQ breaker fails three critical checks."""
    return _alerted_run("dq_alert_job", runs_root)


@pytest.fixture(scope="module")
def slow_run(runs_root: Path) -> AlertedRun:
    """``slow_notify_job``: a 2 s nap against a 1 s duration threshold."""
    return _alerted_run("slow_notify_job", runs_root)


def _slack_of(line: Mapping[str, Any]) -> dict[str, str]:
    return {"text": f"{line['subject']}\n```\n{line['body']}\n```"}


def test_job_failure_is_posted_and_mailed_once(failed_run: AlertedRun) -> None:
    _, job_failure = failed_run.outbox

    assert failed_run.result.state == "FAILED"
    assert [(n["task_key"], n["alert"]) for n in failed_run.outbox] == [
        ("breaks", None), (None, "job_failure")
    ]
    assert failed_run.slack == [_slack_of(job_failure)]
    assert [(m["Subject"], m["To"]) for m in failed_run.emails] == [
        ("[medallion] Run of failing_notify_job failed", "oncall@example.com")
    ]
    assert failed_run.rcpt_tos == [["oncall@example.com"]]
    assert failed_run.emails[0].get_content() == job_failure["body"] + "\n"


def test_dq_violation_alert_names_the_tables_and_the_failed_expectations(
    dq_run: AlertedRun,
) -> None:
    violation, job_failure = dq_run.outbox

    assert (violation["task_key"], violation["event"], violation["alert"]) == (
        "silver_dq_breaker", "on_failure", "dq_violation"
    )
    assert violation["subject"] == (
        "[medallion] DQ violation in dq_alert_job: silver.orders (order_id_not_null, "
        "status_valid), silver.customers (row_count_in_bounds)"
    )
    assert violation["body"].splitlines()[-5:] == [
        "Failed expectations:",
        "ExpectationFailed: DQ breaker (silver): 3 critical check(s) failed; downstream tasks "
        "must not run:",
        "  silver.orders: order_id_not_null failed (3 unexpected rows)",
        "  silver.orders: status_valid failed (1 unexpected rows)",
        "  silver.customers: row_count_in_bounds failed (observed 0)",
    ]
    assert job_failure["alert"] == "job_failure"


def test_dq_violation_goes_to_the_jobs_failure_destinations_on_both_channels(
    dq_run: AlertedRun,
) -> None:
    violation, job_failure = dq_run.outbox

    assert violation["recipients"] == ["oncall@example.com", "data-team@example.com"]
    assert violation["webhook_ids"] == ["slack-oncall"]
    assert dq_run.slack == [_slack_of(violation), _slack_of(job_failure)]
    assert [m["Subject"] for m in dq_run.emails] == [violation["subject"], job_failure["subject"]]
    assert dq_run.rcpt_tos == [["oncall@example.com", "data-team@example.com"]] * 2
    assert dq_run.emails[0].get_content() == violation["body"] + "\n"


def test_dq_violation_stops_the_downstream_tasks_and_keeps_the_whole_error(
    dq_run: AlertedRun,
) -> None:
    breaker = dq_run.result.tasks["silver_dq_breaker"]

    assert (dq_run.result.state, breaker.state, dq_run.result.tasks["publish"].state) == (
        "FAILED", "FAILED", "UPSTREAM_FAILED"
    )
    assert breaker.error_class == "ExpectationFailed"
    assert breaker.error_message == BREAKER_MESSAGE


def test_sla_breach_is_posted_and_mailed_once(slow_run: AlertedRun) -> None:
    (warning,) = slow_run.outbox

    assert slow_run.result.state == "SUCCESS"
    assert warning["alert"] == "sla_breach"
    assert slow_run.slack == [_slack_of(warning)]
    assert [(m["Subject"], m["To"]) for m in slow_run.emails] == [
        ("[medallion] Run of slow_notify_job exceeded its duration threshold (1 s)",
         "oncall@example.com")
    ]


def test_down_channels_leave_the_run_and_its_outbox_as_they_were(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hook_port, smtp_port = free_port(), free_port()
    env = alert_secrets(f"http://127.0.0.1:{hook_port}/services/{TOKEN}", smtp_port)

    with caplog.at_level(logging.DEBUG):
        result = _run("failing_notify_job", tmp_path / "runs", env)

    assert result.state == "FAILED"
    assert result.tasks["breaks"].error == (
        f"notebook {FIXTURE_BUNDLE / 'notebooks' / 'fail.ipynb'}, cell 3 (execution count 3): "
        "ValueError: the source table is empty"
    )
    assert [(n["task_key"], n["event"], n["recipients"], n["alert"]) for n in outbox(result)] == [
        ("breaks", "on_failure", ["source-owner@example.com"], None),
        (None, "on_failure", ["oncall@example.com"], "job_failure"),
    ]
    assert [n.to_json() for n in result.notifications] == outbox(result)
    channel_warnings = [r.getMessage() for r in caplog.records
                        if r.name == "medallion.platform.jobs.channels"
                        and r.levelno >= logging.WARNING]
    where = f"job_failure (on_failure) of job failing_notify_job run {result.run_id}"
    assert channel_warnings == [
        f"alert channel slack: {where} not delivered: ConnectError after 3 attempt(s)",
        f"alert channel smtp: {where} not delivered: ConnectionRefusedError from "
        f"127.0.0.1:{smtp_port}",
    ]
    assert _no_secret_in(caplog.records)
