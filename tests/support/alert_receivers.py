"""Local alert receivers for tests: a Slack-compatible webhook and an SMTP server (aiosmtpd).

``alert_secrets`` is the local secrets provider's environment that points both alert channels
at them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, NamedTuple

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from medallion.lakehouse.credentials import env_name
from medallion.platform.jobs.channels import (
    SLACK_WEBHOOK_KEY,
    SMTP_FROM_KEY,
    SMTP_HOST_KEY,
    SMTP_PASSWORD_KEY,
    SMTP_PORT_KEY,
    SMTP_USER_KEY,
)

TOKEN = "T0AL3RT/B0AL3RT/xoxb-alert-token-5150"
SMTP_USER, SMTP_PASSWORD = "alerts-bot", "smtp-pa55word-9f8e"
SENDER = "medallion@example.com"


class Hook:
    """A local Slack-compatible webhook: answers each POST with the next status it was given."""

    def __init__(self) -> None:
        self.url = ""
        self.statuses: list[int] = []  # then 200 for every later POST
        self.received: list[tuple[str, dict[str, Any]]] = []  # (path, JSON) of each POST

    def payloads(self) -> list[dict[str, Any]]:
        """The JSON of each POST."""
        return [payload for _, payload in self.received]


@contextlib.contextmanager
def serving_hook() -> Iterator[Hook]:
    """A ``Hook`` on a free local port, its token the path, until the block ends."""
    hook = Hook()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            hook.received.append((self.path, json.loads(self.rfile.read(length))))
            self.send_response(hook.statuses.pop(0) if hook.statuses else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    hook.url = f"http://127.0.0.1:{server.server_port}/services/{TOKEN}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


class Mailbox:
    """What a local SMTP server received: envelopes, logins; told what to refuse."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.logins: list[tuple[str, str]] = []
        self.refuse_data: str | None = None  # an SMTP reply such as "554 ..."

    async def handle_DATA(self,  # noqa: N802 (aiosmtpd's hook name)
                          server: SMTP, session: Session, envelope: Envelope) -> str:
        """Keep the message, or refuse it."""
        if self.refuse_data:
            return self.refuse_data
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        """Accept ``SMTP_USER`` with ``SMTP_PASSWORD`` only."""
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        # handled=False: aiosmtpd answers a refusal with its 535.
        return AuthResult(success=(login, password) == (SMTP_USER, SMTP_PASSWORD), handled=False)

    def messages(self) -> list[EmailMessage]:
        """Each received message, parsed."""
        # As received: CRLF line ends, which the parser would keep in the values.
        raw = [(envelope.original_content or b"").replace(b"\r\n", b"\n")
               for envelope in self.envelopes]
        return [message_from_bytes(content, policy=policy.default) for content in raw]


class SmtpServer(NamedTuple):
    port: int
    mailbox: Mailbox


def free_port() -> int:
    # aiosmtpd's controller checks its server by connecting to the port it was given: not 0.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving_smtp() -> Iterator[SmtpServer]:
    """An aiosmtpd server on a free local port, accepting ``SMTP_USER``, until the block ends."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            authenticator=mailbox.authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield SmtpServer(port, mailbox)
    finally:
        controller.stop()



def alert_secrets(hook_url: str | None, smtp_port: int | None) -> dict[str, str]:
    """The environment of the local secrets provider for both channels."""
    env: dict[str, str] = {}
    if hook_url:
        env[env_name(SLACK_WEBHOOK_KEY)] = hook_url
    if smtp_port:
        env |= {env_name(SMTP_HOST_KEY): "127.0.0.1", env_name(SMTP_PORT_KEY): str(smtp_port),
                env_name(SMTP_FROM_KEY): SENDER, env_name(SMTP_USER_KEY): SMTP_USER,
                env_name(SMTP_PASSWORD_KEY): SMTP_PASSWORD}
    return env
