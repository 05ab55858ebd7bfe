"""Lineage transports and failure semantics, on the FX ingest step (no Spark)."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from medallion.lakehouse.environment import LOCAL, Endpoints, Environment
from medallion.lakehouse.errors import ConfigError, SourceUnavailable
from medallion.lakehouse.lineage.transport import ENABLED_ENV, URL_ENV
from medallion.lakehouse.pipelines import StepResult, fx_rates, ingest
from medallion.lakehouse.pipelines.fx_rates import ingest_fx_rates
from medallion.lakehouse.raw.landing import read_manifest
from medallion.lakehouse.runtime import CONTEXT_ENV, TaskContext
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack.fx_api import FxApiServer
from tests.lakehouse.lineage.helpers import bare, read_events, run_event, stable

DAY = date(2026, 11, 2)


class LineageReceiver(ThreadingHTTPServer):
    """A local lineage backend: keeps each POST's path and JSON body, answers 201."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.received: list[tuple[str, dict[str, Any]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: LineageReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[LineageReceiver]:
    server = LineageReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def fx_api() -> Iterator[FxApiServer]:
    with FxApiServer(seed=42) as server:
        yield server


def expected_ingest_events(root: Path, api_url: str) -> list[dict[str, Any]]:
    """START then COMPLETE of ingest.fx_rates: the API's rates into the day's raw load."""
    load = (root / "raw" / "fx_rates" / "load_dt=2026-11-02").resolve()
    port = api_url.rsplit(":", 1)[1].strip("/")
    inputs = [{"namespace": f"fx-api://127.0.0.1:{port}", "name": "rates"}]
    written = {
        **bare("file", load.as_posix()),
        "outputFacets": {
            "outputStatistics": {
                "_producer": "urn:medallion-lakehouse:lineage",
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-2/"
                "OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
                "rowCount": read_manifest(load).row_count,
            }
        },
    }
    return [
        run_event("START", "ingest.fx_rates", inputs, [bare("file", load.as_posix())]),
        run_event("COMPLETE", "ingest.fx_rates", inputs, [written]),
    ]


def test_http_transport_posts_start_then_complete(
    receiver: LineageReceiver, fx_api: FxApiServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(URL_ENV, receiver.url)

    ingest_fx_rates(StorageRoot(tmp_path), DAY, fx_api.url)

    assert [path for path, _ in receiver.received] == ["/api/v1/lineage"] * 2
    assert stable([event for _, event in receiver.received]) == expected_ingest_events(
        tmp_path, fx_api.url
    )
    assert not (tmp_path / "_lineage").exists()


def test_file_transport_appends_json_lines_under_the_storage_root(
    fx_api: FxApiServer, tmp_path: Path
) -> None:
    ingest_fx_rates(StorageRoot(tmp_path), DAY, fx_api.url)

    assert stable(read_events(tmp_path)) == expected_ingest_events(tmp_path, fx_api.url)


def test_lineage_off_emits_nothing_and_the_step_runs_as_before(
    receiver: LineageReceiver, fx_api: FxApiServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(URL_ENV, receiver.url)
    monkeypatch.setenv(ENABLED_ENV, "off")

    result = ingest_fx_rates(StorageRoot(tmp_path), DAY, fx_api.url)

    load = tmp_path / "raw" / "fx_rates" / "load_dt=2026-11-02"
    assert (result.target, result.rows_written) == (str(load), read_manifest(load).row_count)
    assert result.rows_written > 0
    assert receiver.received == []
    assert not (tmp_path / "_lineage").exists()


def test_a_broken_transport_never_fails_the_step(
    fx_api: FxApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "_lineage").write_text("a file where the events directory should be")

    with caplog.at_level(logging.WARNING, logger="medallion.lakehouse.lineage"):
        result = ingest_fx_rates(StorageRoot(tmp_path), DAY, fx_api.url)

    manifest = read_manifest(tmp_path / "raw" / "fx_rates" / "load_dt=2026-11-02")
    assert result == StepResult(
        step="ingest_fx_rates", target=str(manifest.load_dir), rows_in=manifest.row_count,
        rows_written=manifest.row_count,
    )
    lineage_dir = tmp_path / "_lineage"
    assert [
        (message.split(" (run ")[0], message.split("): ", 1)[1])
        for message in (record.getMessage() for record in caplog.records)
    ] == [
        ("lineage: could not emit the START event of ingest.fx_rates",
         f"[Errno 17] File exists: '{lineage_dir}'"),
        ("lineage: could not emit the COMPLETE event of ingest.fx_rates",
         f"[Errno 17] File exists: '{lineage_dir}'"),
    ]


def test_the_error_propagates_unchanged_after_a_fail_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raised = SourceUnavailable("fx API http://127.0.0.1:9: expected rates, found no answer")

    def unavailable(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(fx_rates, "fetch_fx_rates", unavailable)

    with pytest.raises(SourceUnavailable) as caught:
        ingest_fx_rates(StorageRoot(tmp_path), DAY, "http://127.0.0.1:9")

    assert caught.value is raised
    load = (tmp_path / "raw" / "fx_rates" / "load_dt=2026-11-02").resolve().as_posix()
    inputs = [{"namespace": "fx-api://127.0.0.1:9", "name": "rates"}]
    outputs = [bare("file", load)]
    assert stable(read_events(tmp_path)) == [
        run_event("START", "ingest.fx_rates", inputs, outputs),
        run_event("FAIL", "ingest.fx_rates", inputs, outputs, {
            "errorMessage": {
                "_producer": "urn:medallion-lakehouse:lineage",
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/"
                "ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
                "message": f"SourceUnavailable: {raised}",
                "programmingLanguage": "PYTHON",
                "stackTrace": "<trace>",
            },
            "medallion_status": {
                "_producer": "urn:medallion-lakehouse:lineage",
                "_schemaURL": "urn:medallion-lakehouse:facets#/$defs/MedallionStatusRunFacet",
                "error": "SourceUnavailable",
                "status": "FAILED",
            },
        }),
    ]


def test_a_step_called_by_a_step_is_part_of_the_callers_run(
    fx_api: FxApiServer, tmp_path: Path
) -> None:
    environment = Environment.resolve(
        StorageRoot(tmp_path), endpoints=Endpoints(fx_api_url=fx_api.url), target=LOCAL
    )
    ingest.ingest_fx(environment, DAY)  # calls the wrapped ingest_fx_rates

    assert [(e["eventType"], e["job"]["name"]) for e in read_events(tmp_path)] == [
        ("START", "ingest.fx_rates"), ("COMPLETE", "ingest.fx_rates"),
    ]


def test_a_step_in_a_job_run_names_that_run_as_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = TaskContext(
        "ingest_daily_sources", "20261102T060000Z-3fa2c1", "ingest_crm_accounts", tmp_path
    )
    monkeypatch.setenv(CONTEXT_ENV, context.to_json())

    crm = Environment.resolve(StorageRoot(tmp_path), endpoints=Endpoints(crm_api_url="https://crm.example"),
                              target=LOCAL)
    for _ in range(2):  # two steps of the same job run
        with pytest.raises(ConfigError):
            ingest.ingest_crm_accounts(crm, DAY, lookback_days=-1)

    starts = [event for event in read_events(tmp_path) if event["eventType"] == "START"]
    parents = {event["run"]["facets"]["parent"]["run"]["runId"] for event in starts}
    assert len(parents) == 1
    parent = parents.pop()
    assert str(uuid.UUID(parent)) == parent
    assert {
        name: starts[0]["run"]["facets"][name] for name in ("parent", "medallion_task")
    } == {
        "parent": {
            "_producer": "urn:medallion-lakehouse:lineage",
            "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json"
            "#/$defs/ParentRunFacet",
            "job": {"facets": {}, "name": "ingest_daily_sources", "namespace": "medallion"},
            "run": {"facets": {}, "runId": parent},
        },
        "medallion_task": {
            "_producer": "urn:medallion-lakehouse:lineage",
            "_schemaURL": "urn:medallion-lakehouse:facets#/$defs/MedallionTaskRunFacet",
            "job": "ingest_daily_sources",
            "job_run_id": "20261102T060000Z-3fa2c1",
            "task": "ingest_crm_accounts",
        },
    }
