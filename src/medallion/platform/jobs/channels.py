"""Alert channels: a Slack-compatible incoming webhook and SMTP e-mail, configured from secrets.

Every alert (``Alert``: the job's failure, its SLA breach, a DQ violation) is written to the outbox
as every notification is, then delivered by each channel whose secrets are set:

- ``slack``, with secret ``alert-slack-webhook-url``: POSTs ``{"text": <subject and body>}``,
  retried with backoff on 429, 5xx and lost connections.
- ``smtp``, with secrets ``alert-smtp-host``, ``alert-smtp-port`` (25 when unset),
  ``alert-smtp-from``, optionally ``alert-smtp-user`` / ``alert-smtp-password`` (login) and
  ``alert-smtp-starttls`` (``true``): one e-mail to the alert's recipients, the addresses of the
  job's ``email_notifications``; an alert without any is not mailed.

A channel whose secrets are absent is not configured, which is no error. A channel that cannot
deliver logs a warning naming itself, the alert and the run, never its URL or password, and never
raises: the run's result and the outbox stay what they were.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import ClassVar, Protocol

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from medallion.lakehouse.credentials import local_secret_values, redact
from medallion.lakehouse.environment import get_secret
from medallion.platform.jobs.notifications import Notification, Notifier, OutboxNotifier

log = logging.getLogger(__name__)

SLACK_WEBHOOK_KEY = "alert-slack-webhook-url"
SMTP_HOST_KEY, SMTP_PORT_KEY = "alert-smtp-host", "alert-smtp-port"
SMTP_FROM_KEY, SMTP_STARTTLS_KEY = "alert-smtp-from", "alert-smtp-starttls"
SMTP_USER_KEY, SMTP_PASSWORD_KEY = "alert-smtp-user", "alert-smtp-password"
SMTP_DEFAULT_PORT = 25
TIMEOUT_SECONDS = 5.0
SLACK_ATTEMPTS = 3
SLACK_BACKOFF_SECONDS = 0.5  # then 1 s: the waits between the three attempts
TRUE_WORDS = frozenset({"true", "yes", "1"})
# Headers up to RFC 5322's hard limit on one line: folded at 78, a subject naming a job and its
# failed checks would be split before its first word, which readers show as a leading space.
EMAIL_POLICY = policy.SMTP.clone(max_line_length=998)


class _RedactCredentials(logging.Filter):
    """Masks the webhook URLs and local credentials in a record: httpx logs each request's URL."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message, [*sorted(self.urls, key=len, reverse=True),
                                  *local_secret_values()])
        if masked != message:
            record.msg, record.args = masked, None
        return True


# A Slack webhook URL is a credential (its path is the token): httpx's INFO line of each request
# must not show it, nor any other URL that carries a credential of the secrets provider.
_HTTPX_REDACTION = _RedactCredentials()
logging.getLogger("httpx").addFilter(_HTTPX_REDACTION)


class AlertChannel(Notifier, Protocol):
    """A notifier that delivers alerts only, named in its warnings."""

    name: ClassVar[str]


def _warn(channel: str, notification: Notification, why: str) -> None:
    alert = notification.alert.value if notification.alert else notification.event.value
    log.warning("alert channel %s: %s (%s) of job %s run %s not delivered: %s", channel, alert,
                notification.event.value, notification.job_key, notification.run_id, why)


def slack_text(notification: Notification) -> str:
    """The subject, then the body as a code block; Slack's control characters escaped."""
    return f"{_mrkdwn(notification.subject)}\n```\n{_mrkdwn(notification.body)}\n```"


def _mrkdwn(text: str) -> str:
    # Slack reads &, < and > as entities and links (<!channel> pings everyone); ``` would end
    # the code block early.
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("```", "'''")


def _retryable(error: BaseException) -> bool:
    if isinstance(error, httpx.HTTPStatusError):
        status = error.response.status_code
        return status == httpx.codes.TOO_MANY_REQUESTS or status >= 500
    return isinstance(error, httpx.TransportError)  # refused, reset, timed out


class SlackChannel:
    """POSTs each alert to a Slack-compatible incoming webhook as ``{"text": ...}``."""

    name: ClassVar[str] = "slack"

    def __init__(self, url: str, *, attempts: int = SLACK_ATTEMPTS,
                 backoff_seconds: float = SLACK_BACKOFF_SECONDS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._url = url  # its path is the token: never logged
        _HTTPX_REDACTION.urls.add(url)
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    def __repr__(self) -> str:
        return f"SlackChannel(host={httpx.URL(self._url).host!r})"

    def send(self, notification: Notification) -> None:
        """POST the alert, retrying; log, never raise, when it cannot be delivered."""
        if notification.alert is None:
            return
        payload = {"text": slack_text(notification)}
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_seconds),
            retry=retry_if_exception(_retryable), sleep=self.sleep, reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    httpx.post(self._url, json=payload, timeout=TIMEOUT_SECONDS).raise_for_status()
        except httpx.HTTPError as error:
            # The error's own text quotes the URL: name the failure only.
            why = (f"HTTP {error.response.status_code}"
                   if isinstance(error, httpx.HTTPStatusError) else type(error).__name__)
            tries = retrying.statistics.get("attempt_number", 1)
            _warn(self.name, notification, f"{why} after {tries} attempt(s)")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and as whom alerts are mailed."""

    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False


def alert_email(notification: Notification, sender: str) -> EmailMessage:
    """The alert as a plain-text e-mail to its recipients."""
    message = EmailMessage(policy=EMAIL_POLICY)
    message["Subject"] = notification.subject
    message["From"] = sender
    message["To"] = ", ".join(notification.recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="medallion.local")
    message.set_content(notification.body + "\n")
    return message


class SmtpChannel:
    """Mails each alert that has recipients, over one SMTP session per alert."""

    name: ClassVar[str] = "smtp"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, notification: Notification) -> None:
        """Mail the alert; log, never raise, when the server cannot be reached or refuses it."""
        if notification.alert is None or not notification.recipients:
            return
        settings = self.settings
        try:
            message = alert_email(notification, settings.sender)
            with smtplib.SMTP(settings.host, settings.port, timeout=TIMEOUT_SECONDS) as smtp:
                if settings.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if settings.user:
                    smtp.login(settings.user, settings.password or "")
                refused = smtp.send_message(message)
        except (smtplib.SMTPException, OSError, ValueError) as error:
            # Name the failure and the server's code, not its reply, which may quote the login.
            code = getattr(error, "smtp_code", None)
            _warn(self.name, notification,
                  f"{type(error).__name__}{f' {code}' if code else ''} from "
                  f"{settings.host}:{settings.port}")
            return
        if refused:
            _warn(self.name, notification, f"refused for {', '.join(sorted(refused))}")


def _setting(key: str) -> str | None:
    value = get_secret(key, fallback=lambda: None)
    return value.strip() if value else None


def smtp_settings() -> SmtpSettings | None:
    """The SMTP settings of the secrets provider; None when no host is set."""
    host = _setting(SMTP_HOST_KEY)
    if not host:
        return None
    sender, port = _setting(SMTP_FROM_KEY), _setting(SMTP_PORT_KEY) or str(SMTP_DEFAULT_PORT)
    if not sender or not port.isdigit():
        log.warning("alert channel smtp not configured: expected secrets %s (an address) and %s "
                    "(a number, or none for %d), found %s", SMTP_FROM_KEY, SMTP_PORT_KEY,
                    SMTP_DEFAULT_PORT, "a port that is no number" if sender else "no sender")
        return None
    return SmtpSettings(
        host=host, port=int(port), sender=sender, user=_setting(SMTP_USER_KEY),
        password=get_secret(SMTP_PASSWORD_KEY, fallback=lambda: None),
        starttls=(_setting(SMTP_STARTTLS_KEY) or "").lower() in TRUE_WORDS,
    )


def configured_channels() -> list[AlertChannel]:
    """The alert channels whose secrets are set: Slack, then e-mail."""
    channels: list[AlertChannel] = []
    url = _setting(SLACK_WEBHOOK_KEY)
    if url:
        channels.append(SlackChannel(url))
    settings = smtp_settings()
    if settings is not None:
        channels.append(SmtpChannel(settings))
    return channels


class AlertingNotifier:
    """The outbox first, then each alert channel: one failing never stops the others or the run."""

    def __init__(self, outbox: Notifier, channels: Sequence[AlertChannel]) -> None:
        self.outbox = outbox
        self.channels = tuple(channels)

    def send(self, notification: Notification) -> None:
        """Write the notification, then hand it to every channel."""
        self.outbox.send(notification)
        for channel in self.channels:
            try:
                channel.send(notification)
            except Exception as error:  # a channel's own bug must not fail the run
                _warn(channel.name, notification, type(error).__name__)


def default_notifier(runs_root: Path) -> Notifier:
    """The outbox under ``runs_root``, with the alert channels configured in the secrets."""
    outbox = OutboxNotifier.for_runs_root(runs_root)
    channels = configured_channels()
    return AlertingNotifier(outbox, channels) if channels else outbox
