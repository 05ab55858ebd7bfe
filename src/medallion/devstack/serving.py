"""What every HTTP stand-in shares: serving on a background thread, and its state file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)

SHUTDOWN_POLL_SECONDS = 0.02  # how soon stop() returns; the stdlib default is 0.5 s


class BackgroundServer:
    """An HTTP server that serves on a daemon thread; a context manager.

    Subclasses build ``self._server`` (bound when constructed) and name their thread.
    """

    thread_name = "stand-in"
    _server: ThreadingHTTPServer

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Serve on a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
                name=self.thread_name,
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the foreground mode)."""
        self._server.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def write_state_file(path: Path, url: str) -> None:
    """Write ``{"url", "pid"}`` atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    temporary.replace(path)


def serve_in_foreground(server: BackgroundServer, state_file: Path | None, banner: str) -> None:
    """Serve until SIGTERM or Ctrl-C, announcing ``banner``; the state file lives as long."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if state_file:
        write_state_file(state_file, server.url)
    log.info("%s listening on %s", banner, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("%s stopping", banner)
    finally:
        server.stop()
        if state_file:
            state_file.unlink(missing_ok=True)


def stand_in_arguments(description: str) -> argparse.ArgumentParser:
    """The command line every stand-in takes: ``--host``, ``--port`` (0: free), ``--state-file``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--state-file", type=Path, help='where to write {"url", "pid"}')
    return parser


FAULT_STATUSES = frozenset({429, 500, 502, 503, 504})


class BadRequestError(ValueError):
    """The client sent something the stand-in cannot answer (becomes a 400)."""


@dataclass(kw_only=True)
class FaultInjection:
    """Faults a test asks for (``POST /admin/faults``) and requests counted; thread-safe.

    Stand-in states extend it, so every stand-in fails and counts the same way.
    """

    fail_next: int = 0
    fail_status: int = 503
    retry_after: float | None = None
    requests_served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self) -> tuple[int, float | None] | None:
        """The (status, retry_after) to fail this request with, or None to serve it."""
        with self.lock:
            if self.fail_next <= 0:
                return None
            self.fail_next -= 1
            return self.fail_status, self.retry_after

    def count_request(self) -> None:
        """Count one request on the API itself, faulted or not."""
        with self.lock:
            self.requests_served += 1

    def set_faults(self, body: Any) -> dict[str, Any]:
        """Apply ``{"fail_next": N, "status": S, "retry_after": s}``; returns what now applies."""
        if not isinstance(body, dict):
            raise BadRequestError("body: expected a JSON object")
        fail_next = body.get("fail_next", 1)
        status = body.get("status", 503)
        retry_after = body.get("retry_after", 1 if status == 429 else None)
        if not isinstance(fail_next, int) or fail_next < 0:
            raise BadRequestError(f"fail_next {fail_next!r}: expected a non-negative integer")
        if status not in FAULT_STATUSES:
            raise BadRequestError(f"status {status!r}: expected one of {sorted(FAULT_STATUSES)}")
        valid_wait = isinstance(retry_after, int | float) and retry_after >= 0
        if retry_after is not None and not valid_wait:
            raise BadRequestError(f"retry_after {retry_after!r}: expected seconds >= 0")
        with self.lock:
            self.fail_next, self.fail_status, self.retry_after = fail_next, status, retry_after
        return {"fail_next": fail_next, "status": status, "retry_after": retry_after}
