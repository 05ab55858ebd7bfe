"""A local HTTP stand-in of the few Databricks REST endpoints the project calls through the SDK.

It answers as the Jobs API 2.2, SCIM ``Me`` and the Secrets API do, with the fields the SDK
reads: the deployed jobs, ``run-now`` (recording the parameters), ``runs/get`` walking each run
through a script of states, one step per poll, and ``secrets/get`` (base64 values; a scope named
in ``forbidden_scopes`` is refused as without READ permission). Every request must carry the
bearer token.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "dapi-local-stand-in"
USER = "ada@example.com"

# One poll's state: the run's (life cycle, result) and each task's.
Step = tuple[tuple[str, str | None], dict[str, tuple[str, str | None]]]


@dataclass
class Workspace:
    """What the stand-in serves, and what it was asked."""

    jobs: dict[int, str] = field(default_factory=dict)  # job id -> deployed name
    script: Sequence[Step] = ()  # the states of a run, poll by poll (the last one repeats)
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)  # (scope, key) -> value
    forbidden_scopes: tuple[str, ...] = ()
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)  # run id -> run-now body
    polls: dict[int, int] = field(default_factory=dict)
    unauthorized: int = 0

    def run_state(self, run_id: int, url: str) -> dict[str, Any]:
        step = self.polls.get(run_id, 0)
        self.polls[run_id] = step + 1
        (life_cycle, result), tasks = self.script[min(step, len(self.script) - 1)]
        return {
            "run_id": run_id,
            "job_id": self.runs[run_id]["job_id"],
            "run_page_url": f"{url}/jobs/{self.runs[run_id]['job_id']}/runs/{run_id}",
            "state": _state(life_cycle, result),
            "tasks": [
                {"task_key": key, "run_id": run_id * 100 + i, "state": _state(*task)}
                for i, (key, task) in enumerate(tasks.items())
            ],
        }


def _state(life_cycle: str, result: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {"life_cycle_state": life_cycle, "state_message": ""}
    if result is not None:
        state["result_state"] = result
    if result not in (None, "SUCCESS"):
        state["state_message"] = f"Task publish failed with message: {result.lower()}."
    return state


@contextmanager
def workspace_api(workspace: Workspace) -> Iterator[str]:
    """The stand-in's base URL while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(workspace))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _handler(workspace: Workspace) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                return True
            workspace.unauthorized += 1
            self._reply(401, {"error_code": "UNAUTHORIZED", "message": "bad token"})
            return False

        def do_GET(self) -> None:
            if self.path == "/.well-known/databricks-config":  # the SDK's host probe, unsigned
                self._reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})
                return
            if not self._authorized():
                return
            url = urlparse(self.path)
            query = parse_qs(url.query)
            base = f"http://{self.headers['Host']}"
            if url.path == "/api/2.0/preview/scim/v2/Me":
                self._reply(200, {"id": "1", "userName": USER})
            elif url.path == "/api/2.2/jobs/list":
                jobs = [{"job_id": job_id, "settings": {"name": name}}
                        for job_id, name in workspace.jobs.items()]
                self._reply(200, {"jobs": jobs, "has_more": False})
            elif url.path == "/api/2.2/jobs/runs/get":
                run_id = int(query["run_id"][0])
                if run_id not in workspace.runs:
                    self._reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run"})
                    return
                self._reply(200, workspace.run_state(run_id, base))
            elif url.path == "/api/2.0/secrets/get":
                self._secret(query["scope"][0], query["key"][0])
            else:
                self._reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": url.path})

        def _secret(self, scope: str, key: str) -> None:
            if scope in workspace.forbidden_scopes:
                self._reply(403, {"error_code": "PERMISSION_DENIED",
                                  "message": f"User does not have READ permission on {scope}"})
            elif (scope, key) not in workspace.secrets:
                self._reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                  "message": f"Secret does not exist with scope: {scope} and "
                                             f"key: {key}"})
            else:
                value = base64.b64encode(workspace.secrets[scope, key].encode()).decode()
                self._reply(200, {"key": key, "value": value})

        def do_POST(self) -> None:
            if not self._authorized():
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if urlparse(self.path).path == "/api/2.2/jobs/run-now":
                run_id = 1000 + len(workspace.runs)
                workspace.runs[run_id] = body
                self._reply(200, {"run_id": run_id, "number_in_job": run_id})
            else:
                self._reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})

    return Handler
