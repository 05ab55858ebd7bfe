"""The bundle loader: includes, targets, variables, interpolation and notebook paths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from medallion.lakehouse.errors import BundleError
from medallion.platform.bundle import Bundle, BundleInvalidError, SourcePosition, load_bundle

JOB = "resources/daily_pipeline.job.yml"
Edit = Callable[[str, str, str], None]
LineOf = Callable[[str, str], int]


def _task(bundle: Bundle, key: str) -> dict[str, object]:
    """The resolved task `key` of the fixture's job."""
    tasks = bundle.jobs["daily_pipeline"]["tasks"]
    return next(task for task in tasks if task["task_key"] == key)


def _only_error(exc: pytest.ExceptionInfo[BundleInvalidError]) -> str:
    """The single error-level issue of a failed load, rendered."""
    errors = [str(issue) for issue in exc.value.issues if issue.severity == "error"]
    assert len(errors) == 1, errors
    return errors[0]


def test_default_target_is_the_one_marked_default(bundle_root: Path) -> None:
    bundle = load_bundle(bundle_root)

    assert (bundle.name, bundle.target, bundle.mode) == ("mini_lakehouse", "dev", "development")
    assert bundle.jobs["daily_pipeline"]["name"] == "daily_pipeline_dev"
    assert bundle.warnings == ()


def test_notebook_path_is_absolute_and_relative_to_its_yaml_file(bundle_root: Path) -> None:
    bundle = load_bundle(bundle_root)

    notebook = _task(bundle, "ingest")["notebook_task"]
    assert notebook == {
        "notebook_path": str(bundle_root.resolve() / "notebooks" / "ingest.ipynb"),
        "base_parameters": {"run_date": "{{job.parameters.run_date}}"},
    }


def test_notebook_path_without_suffix_resolves_to_the_ipynb(bundle_root: Path) -> None:
    bundle = load_bundle(bundle_root)

    path = _task(bundle, "transform")["notebook_task"]["notebook_path"]  # type: ignore[index]
    assert path == str(bundle_root.resolve() / "notebooks" / "transform.ipynb")


def test_full_string_reference_keeps_the_variable_type(bundle_root: Path) -> None:
    retries = _task(load_bundle(bundle_root), "ingest")["max_retries"]

    assert retries == 2
    assert isinstance(retries, int)


def test_embedded_references_are_substituted_recursively(bundle_root: Path) -> None:
    transform = _task(load_bundle(bundle_root), "transform")

    assert transform["notebook_task"]["base_parameters"] == {  # type: ignore[index]
        "schema": "dev_catalog_medallion_silver"
    }


def test_double_brace_references_are_left_for_the_jobs_service(bundle_root: Path) -> None:
    condition = _task(load_bundle(bundle_root), "has_new_data")["condition_task"]

    assert condition == {
        "op": "GREATER_THAN",
        "left": "{{tasks.ingest.values.new_files}}",
        "right": "0",
    }


def test_workspace_paths_and_user_resolve_locally(bundle_root: Path, edit: Edit) -> None:
    edit(JOB, "../notebooks/ingest.ipynb", "${workspace.file_path}/notebooks/ingest.ipynb")
    edit(JOB, "name: daily_pipeline_${bundle.target}", "name: ${workspace.current_user.userName}")

    bundle = load_bundle(bundle_root)

    path = _task(bundle, "ingest")["notebook_task"]["notebook_path"]  # type: ignore[index]
    assert path == str(bundle_root.resolve() / "notebooks" / "ingest.ipynb")
    assert bundle.jobs["daily_pipeline"]["name"] == "ada@example.com"


def test_resource_id_reference_resolves_to_the_job_key(bundle_root: Path, edit: Edit) -> None:
    edit(JOB, '"2024-01-01"', "${resources.jobs.daily_pipeline.id}")

    parameters = load_bundle(bundle_root).jobs["daily_pipeline"]["parameters"]

    assert parameters[0] == {"name": "run_date", "default": "daily_pipeline"}


@pytest.mark.parametrize(
    ("target", "env", "args", "expected"),
    [
        ("dev", None, None, "dev_catalog"),  # declared default
        ("prod", None, None, "prod_catalog"),  # the target's value beats the default
        ("prod", "env_catalog", None, "env_catalog"),  # BUNDLE_VAR_ beats the target
        ("prod", "env_catalog", {"catalog": "arg_catalog"}, "arg_catalog"),  # --var beats env
    ],
)
def test_variable_precedence(
    bundle_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    env: str | None,
    args: dict[str, str] | None,
    expected: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("BUNDLE_VAR_catalog", env)

    bundle = load_bundle(bundle_root, target, args)

    assert bundle.variables["catalog"] == expected
    assert bundle.variables["schema_prefix"] == f"{expected}_medallion"


def test_variable_from_env_becomes_an_integer_where_the_api_wants_one(
    bundle_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUNDLE_VAR_max_retries", "5")

    assert _task(load_bundle(bundle_root), "ingest")["max_retries"] == 5


def test_target_overlay_merges_tasks_by_task_key(bundle_root: Path) -> None:
    bundle = load_bundle(bundle_root, "prod")

    tasks = bundle.jobs["daily_pipeline"]["tasks"]
    assert [task["task_key"] for task in tasks] == [
        "ingest",
        "has_new_data",
        "transform",
        "publish",
    ]
    assert tasks[3] == {
        "task_key": "publish",
        "depends_on": [{"task_key": "transform"}],
        "run_if": "ALL_SUCCESS",
        "notebook_task": {"notebook_path": str(bundle_root.resolve() / "notebooks/publish.ipynb")},
        "timeout_seconds": 1800,
    }


def test_target_overlay_appends_to_other_lists_like_the_cli(bundle_root: Path, edit: Edit) -> None:
    edit(
        "databricks.yml",
        "          tasks:\n",
        "          email_notifications:\n"
        "            on_failure: [oncall@example.com]\n"
        "          tasks:\n",
    )

    notifications = load_bundle(bundle_root, "prod").jobs["daily_pipeline"]["email_notifications"]

    assert notifications == {"on_failure": ["data-team@example.com", "oncall@example.com"]}


def test_unknown_target_lists_the_targets(bundle_root: Path) -> None:
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle_root, "prd")

    assert str(exc.value) == "unknown target 'prd'; did you mean 'prod'? (targets: dev, prod)"


def test_job_defined_in_two_files_names_both(bundle_root: Path) -> None:
    (bundle_root / "resources" / "zz_copy.job.yml").write_text(
        "resources:\n  jobs:\n    daily_pipeline:\n      name: again\n"
    )

    with pytest.raises(BundleInvalidError) as exc:
        load_bundle(bundle_root)

    assert _only_error(exc) == (
        "resources/zz_copy.job.yml:3: resources.jobs.daily_pipeline: job 'daily_pipeline' is "
        "defined in both resources/daily_pipeline.job.yml:3 and resources/zz_copy.job.yml:3; "
        "resource keys must be unique across files, rename or remove one"
    )


def test_variable_without_value_is_named(bundle_root: Path, edit: Edit, line_of: LineOf) -> None:
    edit("databricks.yml", "    default: data-team@example.com\n", "")

    with pytest.raises(BundleInvalidError) as exc:
        load_bundle(bundle_root)

    line = line_of("databricks.yml", "alert_email:")
    assert _only_error(exc) == (
        f"databricks.yml:{line}: variables.alert_email: variable 'alert_email' has no value for "
        "target 'dev'; set `default:` here, targets.dev.variables.alert_email, "
        "--var alert_email=... or env BUNDLE_VAR_alert_email"
    )


def test_lookup_variable_needs_a_local_value(bundle_root: Path, edit: Edit) -> None:
    edit(
        "databricks.yml",
        "    default: data-team@example.com\n",
        "    lookup:\n      service_principal: alerts\n",
    )

    with pytest.raises(BundleInvalidError) as exc:
        load_bundle(bundle_root)

    assert "variable 'alert_email' uses `lookup` for target 'dev', which needs a Databricks " in (
        _only_error(exc)
    )


def test_variable_reference_cycle_is_detected(
    bundle_root: Path, edit: Edit, line_of: LineOf
) -> None:
    edit("databricks.yml", "default: dev_catalog", "default: ${var.schema_prefix}")

    with pytest.raises(BundleInvalidError) as exc:
        load_bundle(bundle_root)

    line = line_of("databricks.yml", "default: ${var.schema_prefix}")
    assert _only_error(exc) == (
        f"databricks.yml:{line}: variables.catalog.default: reference cycle: "
        "${var.schema_prefix} -> ${var.catalog} -> ${var.schema_prefix}; "
        "break the cycle by giving one of them a value"
    )


def test_unknown_variable_reference_is_located(
    bundle_root: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(JOB, "${var.schema_prefix}_silver", "${var.schema_prefx}_silver")

    with pytest.raises(BundleInvalidError) as exc:
        load_bundle(bundle_root)

    line = line_of(JOB, "schema_prefx")
    assert _only_error(exc) == (
        f"{JOB}:{line}: resources.jobs.daily_pipeline.tasks[2].notebook_task.base_parameters"
        ".schema: unknown reference ${var.schema_prefx}: variable 'schema_prefx' is not "
        "declared; did you mean 'schema_prefix'?"
    )


def test_unquoted_dates_and_yes_stay_strings_as_in_yaml_1_2(bundle_root: Path, edit: Edit) -> None:
    edit(JOB, 'default: "2024-01-01"', "default: 2024-01-01")
    edit(JOB, 'right: "0"', "right: yes")

    bundle = load_bundle(bundle_root)

    assert bundle.jobs["daily_pipeline"]["parameters"][0]["default"] == "2024-01-01"
    assert _task(bundle, "has_new_data")["condition_task"]["right"] == "yes"  # type: ignore[index]


def test_locate_maps_a_resolved_path_to_file_and_line(bundle_root: Path, line_of: LineOf) -> None:
    bundle = load_bundle(bundle_root, "prod")

    path = "resources.jobs.daily_pipeline.tasks[3].timeout_seconds"
    assert bundle.locate(path) == SourcePosition(
        "databricks.yml",
        line_of("databricks.yml", "timeout_seconds: 1800"),
        "targets.prod.resources.jobs.daily_pipeline.tasks[0].timeout_seconds",
    )
