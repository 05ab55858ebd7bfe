"""Running a deployed job through databricks-sdk, against a local stand-in of the Jobs API."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from databricks.sdk import WorkspaceClient
from typer.testing import CliRunner

from medallion.lakehouse.errors import ConfigError, JobRunFailed
from medallion.lakehouse.settings import repo_root
from medallion.platform.cli import app
from medallion.platform.jobs.remote import RemoteRun, RunStillRunning, TaskState, run_deployed_job
from tests.platform.jobs.workspace_api import TOKEN, Step, Workspace, workspace_api

RUNNING = ("RUNNING", None)
DONE = ("TERMINATED", "SUCCESS")
PASSING: list[Step] = [
    (("PENDING", None), {}),
    (RUNNING, {"bronze": RUNNING, "publish": ("PENDING", None)}),
    (RUNNING, {"bronze": DONE, "publish": RUNNING}),
    (DONE, {"bronze": DONE, "publish": DONE}),
]
FAILING: list[Step] = [
    *PASSING[:3],
    (("TERMINATED", "FAILED"), {"bronze": DONE, "publish": ("TERMINATED", "FAILED")}),
]
PARAMETERS = {"run_date": "2026-11-03"}


ClientFor = Callable[[str], WorkspaceClient]


@pytest.fixture
def client_for(monkeypatch: pytest.MonkeyPatch) -> ClientFor:
    """A WorkspaceClient on the stand-in, with no profile or environment of the caller's."""
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", "/nonexistent/databrickscfg")

    def make(url: str) -> WorkspaceClient:
        return WorkspaceClient(host=url, token=TOKEN)

    return make


def _watch(workspace: Workspace, client_for: ClientFor, job: str = "build_analytics",
           timeout: float = 30.0) -> tuple[RemoteRun | None, list[tuple[str, list[str]]]]:
    seen: list[tuple[str, list[str]]] = []

    def on_change(run: RemoteRun, changed: tuple[TaskState, ...]) -> None:
        seen.append((run.result or run.life_cycle, [str(task) for task in changed]))

    with workspace_api(workspace) as url:
        run = run_deployed_job(client_for(url), job, PARAMETERS,
                               timeout_seconds=timeout, poll_seconds=0.01, on_change=on_change)
    return run, seen


def test_a_passing_run_is_submitted_with_its_parameters_and_watched_task_by_task(
    client_for: ClientFor,
) -> None:
    workspace = Workspace(jobs={7: "ingest_daily_sources", 8: "build_analytics"}, script=PASSING)

    run, seen = _watch(workspace, client_for)

    assert workspace.runs == {1000: {"job_id": 8, "job_parameters": PARAMETERS}}
    assert seen == [
        ("RUNNING", ["bronze: RUNNING", "publish: PENDING"]),
        ("RUNNING", ["bronze: SUCCESS", "publish: RUNNING"]),
        ("SUCCESS", ["publish: SUCCESS"]),
    ]
    assert run is not None
    assert (run.run_id, run.passed) == (1000, True)
    assert run.url.endswith("/jobs/8/runs/1000")
    assert workspace.unauthorized == 0


def test_the_development_mode_name_of_a_deployed_job_is_found(client_for: ClientFor) -> None:
    workspace = Workspace(jobs={9: "[dev ada] build_analytics"}, script=PASSING)

    _watch(workspace, client_for)

    assert [body["job_id"] for body in workspace.runs.values()] == [9]


def test_a_failed_run_raises_naming_the_failed_task_and_the_run_page(client_for: ClientFor) -> None:
    workspace = Workspace(jobs={8: "build_analytics"}, script=FAILING)

    with pytest.raises(JobRunFailed) as failed:
        _watch(workspace, client_for)

    assert str(failed.value).startswith(
        "run 1000 of 'build_analytics' ended FAILED: Task publish failed with message: failed.; "
        "tasks publish: FAILED (http://127.0.0.1:"
    )
    assert str(failed.value).endswith("/jobs/8/runs/1000)")


def test_a_run_still_running_at_the_timeout_is_reported_and_left_running(
    client_for: ClientFor,
) -> None:
    workspace = Workspace(jobs={8: "build_analytics"}, script=PASSING[:2])

    with pytest.raises(RunStillRunning) as late:
        _watch(workspace, client_for, timeout=0.2)

    assert str(late.value).startswith(
        "run 1000 of 'build_analytics': expected it to finish within 0.2 s, it is still RUNNING; "
        "it goes on in the workspace: http://127.0.0.1:"
    )
    assert workspace.polls[1000] >= 2


def test_a_job_that_is_not_deployed_is_named_with_what_was_looked_for(
    client_for: ClientFor,
) -> None:
    workspace = Workspace(jobs={7: "ingest_daily_sources"}, script=PASSING)

    with pytest.raises(ConfigError) as missing:
        _watch(workspace, client_for)

    assert "job 'build_analytics' on http://127.0.0.1:" in str(missing.value)
    assert str(missing.value).endswith(
        "expected one deployed job named '[dev ada] build_analytics' or 'build_analytics', "
        "found 0; deploy it first (`databricks bundle deploy -t <target>`)"
    )
    assert workspace.runs == {}


@pytest.mark.parametrize(("script", "exit_code"), [(PASSING, 0), (FAILING, 1)])
def test_jobs_run_on_a_workspace_target_runs_the_deployed_job(
    monkeypatch: pytest.MonkeyPatch, script: list[Step], exit_code: int
) -> None:
    workspace = Workspace(jobs={8: "[dev ada] build_analytics"}, script=script)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", "/nonexistent/databrickscfg")
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)

    with workspace_api(workspace) as url:
        monkeypatch.setenv("DATABRICKS_HOST", url)
        result = CliRunner().invoke(app, [
            "jobs", "run", "build_analytics", "-t", "dev", "--param", "run_date=2026-11-03",
            "--poll-seconds", "0.01", "--bundle-root", str(repo_root()),
        ])

    assert result.exit_code == exit_code, result.output
    assert workspace.runs == {1000: {"job_id": 8, "job_parameters": PARAMETERS}}
    lines = result.output.splitlines()
    assert lines[0] == f"build_analytics on {url} (dev)"
    assert "  publish: RUNNING" in lines
    last = "  publish: SUCCESS" if exit_code == 0 else "  publish: FAILED"
    assert last in lines


@pytest.mark.parametrize(("script", "exit_code", "result_state"),
                         [(PASSING[2:3], 0, "RUNNING"), (FAILING[3:], 1, "FAILED")])
def test_jobs_status_shows_a_workspace_run_and_exits_1_once_it_failed(
    monkeypatch: pytest.MonkeyPatch, script: list[Step], exit_code: int, result_state: str
) -> None:
    workspace = Workspace(jobs={8: "build_analytics"}, script=script,
                          runs={1000: {"job_id": 8}})
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", "/nonexistent/databrickscfg")
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)

    with workspace_api(workspace) as url:
        monkeypatch.setenv("DATABRICKS_HOST", url)
        result = CliRunner().invoke(app, [
            "jobs", "status", "1000", "-t", "dev", "--bundle-root", str(repo_root()),
        ])

    assert result.exit_code == exit_code, result.output
    publish = "RUNNING" if exit_code == 0 else "FAILED"
    assert result.output.splitlines() == [
        "  bronze: SUCCESS",
        f"  publish: {publish}",
        f"run 1000: {result_state} ({url}/jobs/8/runs/1000)",
    ]


def test_jobs_status_names_a_run_the_workspace_does_not_have(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", "/nonexistent/databrickscfg")
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)

    with workspace_api(Workspace()) as url:
        monkeypatch.setenv("DATABRICKS_HOST", url)
        result = CliRunner().invoke(app, [
            "jobs", "status", "77", "-t", "dev", "--bundle-root", str(repo_root()),
        ])

    assert result.exit_code == 2, result.output
    assert f"run 77 on {url}: expected a run of a job there, found none" in result.output
