"""Our semantic checks: each breaks one thing in a valid bundle and expects one precise issue."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from medallion.platform.bundle import BundleInvalidError, BundleIssue, check_bundle, validate_bundle

JOB = "resources/daily_pipeline.job.yml"
PREFIX = "resources.jobs.daily_pipeline"
TASKS = "(tasks: ingest, has_new_data, transform, publish)"
Edit = Callable[[str, str, str], None]
LineOf = Callable[[str, str], int]


def _errors(root: Path, target: str | None = None) -> list[str]:
    """The error-level issues of a bundle (no schema check: that has its own tests)."""
    issues = validate_bundle(root, target, schema_path=root / "no-schema.json")
    return [str(issue) for issue in issues if issue.severity == "error"]


def test_valid_bundle_has_no_errors_in_any_target(bundle_root: Path) -> None:
    issues = validate_bundle(bundle_root, schema_path=bundle_root / "no-schema.json")

    assert [issue.severity for issue in issues] == ["info"]


def test_missing_schema_is_reported_as_skipped(bundle_root: Path) -> None:
    missing = bundle_root / "no-schema.json"

    issues = validate_bundle(bundle_root, schema_path=missing)

    assert issues == [
        BundleIssue(
            "databricks.yml",
            0,
            "",
            f"JSON Schema check skipped: no bundle schema at {missing}",
            "info",
        )
    ]


def test_misspelled_task_key_is_caught(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit(
        JOB,
        "depends_on:\n            - task_key: transform",
        "depends_onn:\n            - task_key: transform",
    )

    assert _errors(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'depends_onn')}: {PREFIX}.tasks[3].depends_onn: unknown key "
        "'depends_onn' in task 'publish'; did you mean 'depends_on'?"
    ]


def test_misspelled_top_level_key_is_caught(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit("databricks.yml", "include:\n", "resourcess: {}\ninclude:\n")

    assert _errors(bundle_root) == [
        f"databricks.yml:{line_of('databricks.yml', 'resourcess')}: resourcess: unknown "
        "top-level key 'resourcess'; did you mean 'resources'?"
    ]


def test_dangling_depends_on_is_caught(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit(JOB, "            - task_key: transform\n", "            - task_key: transfrom\n")

    assert _errors(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'transfrom')}: {PREFIX}.tasks[3].depends_on[0].task_key: "
        f"'transfrom' is not a task of job 'daily_pipeline'; did you mean 'transform'? {TASKS}"
    ]


def test_missing_notebook_is_caught(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit(JOB, "../notebooks/publish.ipynb", "../notebooks/publsh.ipynb")

    expected = bundle_root.resolve() / "notebooks" / "publsh.ipynb"
    assert _errors(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'publsh')}: {PREFIX}.tasks[3].notebook_task.notebook_path: "
        f"notebook '../notebooks/publsh.ipynb' not found (looked for {expected}); "
        f"did you mean 'publish'? (paths are relative to {JOB})"
    ]


def test_dependency_cycle_is_caught(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit(
        JOB,
        "- task_key: ingest\n          max_retries",
        "- task_key: ingest\n          depends_on:\n            - task_key: transform  # back\n"
        "          max_retries",
    )

    # Reported once, at the dependency that closes the cycle when walking from the first task.
    line = line_of(JOB, "            - task_key: ingest")
    assert _errors(bundle_root) == [
        f"{JOB}:{line}: {PREFIX}.tasks[1].depends_on[0].task_key: dependency cycle: "
        "ingest -> transform -> has_new_data -> ingest (each depends on the next); "
        "remove one of these depends_on"
    ]


def test_duplicate_task_key_is_caught(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit(JOB, "      - task_key: publish\n", "      - task_key: ingest  # again\n")

    numbered = enumerate((bundle_root / JOB).read_text().splitlines(), 1)
    first, second = [i for i, line in numbered if line.startswith("        - task_key: ingest")]
    assert (
        f"{JOB}:{second}: {PREFIX}.tasks[3].task_key: duplicate task_key 'ingest' in job "
        f"'daily_pipeline' (first at line {first}); task keys must be unique, rename one"
    ) in _errors(bundle_root)


def test_outcome_needs_a_condition_task_upstream(
    bundle_root: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(
        JOB,
        "- task_key: transform\n          run_if",
        "- task_key: transform\n              outcome: 'true'\n          run_if",
    )

    line = line_of(JOB, "outcome: 'true'")
    assert _errors(bundle_root) == [
        f"{JOB}:{line}: {PREFIX}.tasks[3].depends_on[0].outcome: outcome is only allowed on a "
        "dependency on a condition_task, and 'transform' is a notebook_task; remove outcome"
    ]


def test_outcome_must_be_true_or_false(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit(JOB, 'outcome: "true"', "outcome: maybe")

    assert _errors(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'outcome: maybe')}: {PREFIX}.tasks[2].depends_on[0].outcome: "
        'outcome must be "true" or "false", found \'maybe\''
    ]


def test_run_if_must_be_a_run_condition(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit(JOB, "run_if: ALL_SUCCESS", "run_if: ALL_SUCCES")

    assert _errors(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'run_if')}: {PREFIX}.tasks[3].run_if: run_if 'ALL_SUCCES' is not "
        "a run condition; did you mean 'ALL_SUCCESS'?"
    ]


def test_task_with_two_types_is_caught(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit(JOB, "      - task_key: publish\n", "      - task_key: publish\n          sql_task: {}\n")

    assert _errors(bundle_root) == [
        f"{JOB}:{line_of(JOB, '- task_key: publish')}: {PREFIX}.tasks[3]: task 'publish' has 2 "
        "task types (notebook_task, sql_task); keep one"
    ]


def test_task_values_must_come_from_an_upstream_task(
    bundle_root: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(JOB, "{{tasks.ingest.values.new_files}}", "{{tasks.publish.values.new_files}}")

    assert _errors(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'left:')}: {PREFIX}.tasks[1].condition_task.left: "
        "{{tasks.publish.values.new_files}}: 'publish' is not upstream of task 'has_new_data', "
        "so its values may not exist yet; add 'publish' to the depends_on of 'has_new_data'"
    ]


def test_task_values_must_name_a_task(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit(JOB, "{{tasks.ingest.values.new_files}}", "{{tasks.injest.values.new_files}}")

    assert _errors(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'left:')}: {PREFIX}.tasks[1].condition_task.left: "
        "{{tasks.injest.values.new_files}} names 'injest', which is not a task of job "
        "'daily_pipeline'; did you mean 'ingest'?"
    ]


def test_job_parameter_reference_must_be_declared(
    bundle_root: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(JOB, "{{job.parameters.run_date}}", "{{job.parameters.rundate}}")

    assert _errors(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'rundate')}: {PREFIX}.tasks[0].notebook_task.base_parameters"
        ".run_date: {{job.parameters.rundate}} names 'rundate', which is not a parameter of job "
        "'daily_pipeline'; did you mean 'run_date'?"
    ]


def test_issue_of_one_target_names_it(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit("databricks.yml", "      max_retries: 3\n", "      max_retries: three\n")

    assert _errors(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'max_retries')}: {PREFIX}.tasks[0].max_retries: expected an "
        "integer, found 'three'; fix the value or the variable behind it [target 'prod']"
    ]


def test_check_bundle_raises_listing_every_error(bundle_root: Path, edit: Edit) -> None:
    edit(JOB, "run_if: ALL_SUCCESS", "run_if: SOMETIMES")
    edit(JOB, "            - task_key: transform\n", "            - task_key: nowhere\n")

    with pytest.raises(BundleInvalidError) as exc:
        check_bundle(bundle_root, schema_path=bundle_root / "no-schema.json")

    assert str(exc.value).splitlines()[0] == (
        f"bundle {bundle_root.resolve()} is invalid (2 error(s)):"
    )
    assert [issue.yaml_path for issue in exc.value.issues if issue.severity == "error"] == [
        f"{PREFIX}.tasks[3].depends_on[0].task_key",
        f"{PREFIX}.tasks[3].run_if",
    ]


def test_issue_renders_as_file_line_path_message() -> None:
    issue = BundleIssue("resources/a.job.yml", 14, "resources.jobs.a.tasks[2]", "broken")

    assert str(issue) == "resources/a.job.yml:14: resources.jobs.a.tasks[2]: broken"


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_explicit_target_is_checked_alone(bundle_root: Path, target: str) -> None:
    assert _errors(bundle_root, target) == []


def test_yaml_syntax_error_is_located(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit(JOB, "      max_concurrent_runs: 1\n", "      max_concurrent_runs: [1\n")

    errors = _errors(bundle_root)

    assert len(errors) == 1
    assert errors[0].startswith(f"{JOB}:{line_of(JOB, 'timeout_seconds: 3600')}: not valid YAML: ")
    assert errors[0].endswith("; fix the syntax")
