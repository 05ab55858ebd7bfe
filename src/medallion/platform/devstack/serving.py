"""What every HTTP stand-in shares: an ASGI app served on a background thread, its state file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, HTTPExceptionHandler

log = logging.getLogger(__name__)


class BackgroundServer:
    """An ASGI app served by uvicorn on a daemon thread; a context manager.

    The socket is bound when constructed, so ``url`` is known (and a taken port fails) at once.
    """

    thread_name = "stand-in"

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._socket = _listening_socket(host, port)
        bound_host, bound_port = self._socket.getsockname()[:2]
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=bound_host,
                port=bound_port,
                log_level="warning",
                lifespan="off",
                # uvicorn's warnings reach our logging as any library's do; no access log, so
                # request headers (a bearer token) are never written anywhere.
                log_config=None,
                access_log=False,
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self._server.config.host}:{self._server.config.port}"

    def start(self) -> Self:
        """Serve on a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.run,
                kwargs={"sockets": [self._socket]},
                name=self.thread_name,
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until SIGTERM or Ctrl-C (the foreground mode).

        uvicorn shuts down gracefully on the signal, then raises it again for the caller.
        """
        self._server.run(sockets=[self._socket])

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join()
            self._thread = None
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: a free port) and listening.

    Made with an explicit ``IPPROTO_TCP``: asyncio turns Nagle off only on connections whose
    socket says so, and with Nagle on, every keep-alive answer waits ~40 ms for a delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


def stand_in_app(
    routes: Sequence[BaseRoute], not_found: HTTPExceptionHandler, bad_request: HTTPExceptionHandler
) -> Starlette:
    """A Starlette app over ``routes``, answering what no route serves as the stand-ins always did.

    That is ``not_found`` for an unknown path, a known path with another method and a path with
    a trailing slash (a 404 each, never Starlette's 405 or redirect), and ``bad_request`` for a
    ``BadRequestError``.
    """
    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_found, BadRequestError: bad_request},
    )
    app.router.redirect_slashes = False
    return app


def json_response(
    payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``payload`` as JSON, written by ``json.dumps`` as the stand-ins always wrote it.

    Not Starlette's ``JSONResponse``: that one writes compact UTF-8 and refuses NaN, while a
    stand-in serves what it was loaded with, dirt included, in the bytes clients already parse.
    """
    return Response(json.dumps(payload), status, headers, media_type="application/json")


async def read_json_body(request: Request) -> Any:
    """The request's JSON body (``{}`` when empty); a ``BadRequestError`` when it is not JSON."""
    try:
        return json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as error:
        raise BadRequestError(f"body is not JSON: {error}") from error


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
