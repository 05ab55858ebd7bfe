"""The local runner honours the Jobs service's semantics (fixture bundle, real papermill)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from medallion.lakehouse.errors import BundleError
from medallion.platform.bundle import load_bundle
from medallion.platform.jobs import RunOptions, run_job
from medallion.platform.jobs.engine import JobRunResult, write_run_record
from medallion.platform.jobs.model import parse_job
from tests.platform.jobs.conftest import FIXTURE_BUNDLE, RunFixture, markers


def states(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {key: run.state for key, run in result.tasks.items()}


def test_task_that_fails_once_succeeds_under_max_retries(
    run_fixture_job: RunFixture, marker_dir: Path, sleeps: list[float]
) -> None:
    result = run_fixture_job("retry_job")

    assert states(result) == {"flaky": "SUCCESS", "after_flaky": "SUCCESS"}
    assert result.tasks["flaky"].attempts == 2
    assert sleeps == [0.1]
    assert (marker_dir / "flaky.attempts").read_text() == "2"
    assert (result.run_dir / "flaky.attempt-1.ipynb").exists()
    assert (result.run_dir / "flaky.ipynb").exists()
    assert result.state == "SUCCESS"
    assert result.exit_code == 0


def test_retry_waits_the_same_interval_before_each_attempt(
    run_fixture_job: RunFixture, marker_dir: Path, sleeps: list[float]
) -> None:
    marker_dir.mkdir(parents=True)
    (marker_dir / "flaky.attempts").write_text("-1")  # two failures to go

    result = run_fixture_job("retry_job")

    assert result.tasks["flaky"].attempts == 3
    assert sleeps == [0.1, 0.1]  # as the Jobs service: no backoff


def test_a_deterministic_error_fails_at_once_and_a_transient_one_is_retried(
    run_fixture_job: RunFixture, marker_dir: Path, sleeps: list[float]
) -> None:
    result = run_fixture_job("retry_only_transient_job")

    assert states(result) == {"bad_load": "FAILED", "source_down": "FAILED"}
    bad_load, source_down = result.tasks["bad_load"], result.tasks["source_down"]
    assert (bad_load.attempts, (marker_dir / "bad_load.attempts").read_text()) == (1, "1")
    assert bad_load.error_class == "RawLoadError"
    assert bad_load.error_message == "bad_load: expected what the test asks for, found RawLoadError"
    assert bad_load.reason == "not retried: RawLoadError is not a transient error"
    assert (source_down.attempts, (marker_dir / "source_down.attempts").read_text()) == (3, "3")
    assert sleeps == [0.1, 0.1]  # the transient error's two retries only


def test_condition_task_true_runs_the_true_branch_only(
    run_fixture_job: RunFixture, marker_dir: Path
) -> None:
    result = run_fixture_job("branch_job", n="7")

    assert states(result) == {"produce": "SUCCESS", "is_big": "SUCCESS", "big": "SUCCESS",
                              "small": "EXCLUDED", "join": "SUCCESS"}
    assert result.tasks["is_big"].condition_result == "true"
    assert sorted(markers(marker_dir)) == ["big", "join"]


def test_condition_task_false_skips_the_true_branch(
    run_fixture_job: RunFixture, marker_dir: Path
) -> None:
    result = run_fixture_job("branch_job", n="3")

    assert states(result) == {"produce": "SUCCESS", "is_big": "SUCCESS", "big": "EXCLUDED",
                              "small": "SUCCESS", "join": "SUCCESS"}
    assert result.tasks["is_big"].condition_result == "false"
    assert sorted(markers(marker_dir)) == ["join", "small"]
    assert result.state == "SUCCESS"


def test_failing_task_stops_dependents_and_run_if_tasks_still_run(
    run_fixture_job: RunFixture, marker_dir: Path
) -> None:
    result = run_fixture_job("failure_job")

    assert states(result) == {
        "first": "SUCCESS", "breaks": "FAILED", "downstream": "UPSTREAM_FAILED",
        "further_downstream": "UPSTREAM_FAILED", "cleanup": "SUCCESS", "alert": "SUCCESS",
    }
    assert sorted(markers(marker_dir)) == ["alert", "cleanup", "first"]
    assert result.state == "FAILED"
    assert result.exit_code == 1


def test_failure_message_names_task_notebook_cell_and_error(
    run_fixture_job: RunFixture,
) -> None:
    result = run_fixture_job("failure_job")

    notebook = FIXTURE_BUNDLE / "notebooks" / "fail.ipynb"
    assert result.tasks["breaks"].error == (
        f"notebook {notebook}, cell 3 (execution count 3): "
        "ValueError: the source table is empty"
    )
    assert result.failure_message().splitlines() == [
        f"job 'failure_job' run {result.run_id} FAILED",
        f"  task 'breaks' FAILED after 1 attempt(s): {result.tasks['breaks'].error}",
        "  task 'downstream' did not run: run_if ALL_SUCCESS not met by its dependencies "
        "(breaks=FAILED)",
        "  task 'further_downstream' did not run: run_if ALL_SUCCESS not met by its "
        "dependencies (downstream=UPSTREAM_FAILED)",
    ]


def test_task_timeout_kills_the_notebook_and_fails_dependents(
    run_fixture_job: RunFixture, marker_dir: Path
) -> None:
    result = run_fixture_job("timeout_job")

    assert states(result) == {"slow": "TIMEDOUT", "after_slow": "UPSTREAM_FAILED"}
    assert result.tasks["slow"].error == "timed out after 2 s"
    assert result.tasks["slow"].duration_seconds < 30
    assert result.state == "TIMEDOUT"
    assert result.exit_code == 1


def test_job_parameters_are_pushed_down_over_task_parameters(
    run_fixture_job: RunFixture, marker_dir: Path
) -> None:
    result = run_fixture_job("params_job")

    recorded = markers(marker_dir)["from_job"]
    assert recorded["label"] == "from_job"
    assert recorded["extra"] == f"run {result.run_id}"
    assert recorded["run_date"] == result.run_id[:8][:4] + "-" + result.run_id[4:6] + "-" \
        + result.run_id[6:8]
    assert recorded["cwd"] == str(FIXTURE_BUNDLE / "notebooks")


def test_run_keeps_executed_notebooks_and_a_run_record(run_fixture_job: RunFixture) -> None:
    result = run_fixture_job("branch_job", n="7")

    assert sorted(p.name for p in result.run_dir.glob("*.ipynb")) == [
        "big.ipynb", "join.ipynb", "produce.ipynb"
    ]
    executed = nbformat.read(result.run_dir / "produce.ipynb", as_version=4)  # type: ignore[no-untyped-call]
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert 'value = "7"' in injected[0].source
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["state"] == "SUCCESS"
    assert [t["task_key"] for t in record["tasks"]] == ["produce", "is_big", "big", "small",
                                                        "join"]
    assert json.loads((result.run_dir / "_task_values" / "produce.json").read_text()) == {"n": 7}


def test_for_each_task_runs_the_nested_task_once_per_input(
    run_fixture_job: RunFixture, marker_dir: Path
) -> None:
    result = run_fixture_job("loop_job")

    assert states(result) == {"per_day": "SUCCESS", "after_loop": "SUCCESS"}
    recorded = markers(marker_dir)
    assert sorted(recorded) == ["after_loop", "day_2026-11-01", "day_2026-11-02",
                                "day_2026-11-03"]
    assert recorded["day_2026-11-02"]["extra"] == '{"day": "2026-11-02"}'
    assert sorted(p.name for p in (result.run_dir / "per_day").glob("*.ipynb")) == [
        "iteration-0.ipynb", "iteration-1.ipynb", "iteration-2.ipynb"
    ]


def test_for_each_task_with_inputs_that_are_not_a_list_fails_clearly(
    run_fixture_job: RunFixture,
) -> None:
    result = run_fixture_job("loop_job", days='{"day": "2026-11-01"}')

    assert states(result) == {"per_day": "FAILED", "after_loop": "UPSTREAM_FAILED"}
    assert result.tasks["per_day"].error == (
        "job 'loop_job' task 'per_day' for_each_task.inputs: expected a JSON list, got dict"
    )


def test_run_job_task_runs_another_job_with_its_parameters_once_and_per_item(
    run_fixture_job: RunFixture, marker_dir: Path, tmp_path: Path
) -> None:
    result = run_fixture_job("parent_job")

    assert states(result) == {"run_params_job": "SUCCESS", "per_day": "SUCCESS"}
    recorded = markers(marker_dir)
    assert sorted(recorded) == ["day_2026-11-01", "day_2026-11-02", "from_parent"]
    assert [recorded[f"day_2026-11-0{n}"]["run_date"] for n in (1, 2)] == [
        "2026-11-01", "2026-11-02"
    ]
    child_runs = [json.loads(path.read_text())
                  for path in (tmp_path / "runs" / "params_job").glob("*/run.json")]
    assert len(child_runs) == 3
    # run ids started in the same second differ only in their random suffix: found by label
    (child,) = [run for run in child_runs if run["parameters"]["label"] == "from_parent"]
    assert result.tasks["run_params_job"].notebook_output == child["run_dir"]
    assert recorded["from_parent"]["extra"] == f"run {child['run_id']}"


def test_a_failed_child_run_fails_the_run_job_task_and_names_what_failed(
    run_fixture_job: RunFixture,
) -> None:
    result = run_fixture_job("parent_of_failure_job")

    assert states(result) == {"run_failure_job": "FAILED", "after": "UPSTREAM_FAILED"}
    error = result.tasks["run_failure_job"].error or ""
    assert error.startswith("run ")
    assert "of job 'failure_job' FAILED: task 'breaks' FAILED after 1 attempt(s): notebook" in error
    assert "ValueError" in error


def test_run_record_never_shows_a_secret_looking_parameter(tmp_path: Path) -> None:
    result = JobRunResult("daily", "r1", tmp_path, "SUCCESS", {}, 1.0,
                          {"run_date": "2026-11-26", "api_token": "t-123456"})

    record = json.loads(write_run_record(result).read_text())

    assert record["parameters"] == {"run_date": "2026-11-26", "api_token": "[REDACTED]"}


def test_only_runs_the_named_tasks_as_if_their_left_out_upstream_succeeded(
    tmp_path: Path, marker_dir: Path
) -> None:
    bundle = load_bundle(FIXTURE_BUNDLE)
    jobs = {key: parse_job(key, raw) for key, raw in bundle.jobs.items()}
    options = RunOptions(runs_root=tmp_path / "runs", compute="cold", kernel_pool=1, jobs=jobs)

    job = jobs["failure_job"].only(["downstream", "further_downstream"])
    result = run_job(job, {"marker_dir": str(marker_dir)}, options)

    assert states(result) == {"downstream": "SUCCESS", "further_downstream": "SUCCESS"}
    assert sorted(markers(marker_dir)) == ["downstream", "further_downstream"]


def test_only_with_a_key_the_job_lacks_names_it() -> None:
    bundle = load_bundle(FIXTURE_BUNDLE)
    job = parse_job("failure_job", bundle.jobs["failure_job"])

    with pytest.raises(BundleError, match=r"only expected task keys of the job .*found nosuch"):
        job.only(["first", "nosuch"])
