"""The structural check with the official `databricks-bundles` models: no schema file needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medallion.platform.bundle import validate_bundle
from medallion.platform.bundle.files import read_bundle_files
from medallion.platform.bundle.models import check_models, models_version

JOB = "resources/daily_pipeline.job.yml"
PREFIX = "resources.jobs.daily_pipeline"
ROOT = "databricks.yml"
Edit = Callable[[str, str, str], None]
LineOf = Callable[[str, str], int]
OFFICIAL = f"(official model, databricks-bundles {models_version()})"


def _issues(root: Path) -> list[str]:
    """Every issue of the bundle at ``root`` (no JSON Schema is given)."""
    return [str(issue) for issue in validate_bundle(root)]


def test_a_valid_bundle_passes_without_a_schema_file(bundle_root: Path) -> None:
    assert _issues(bundle_root) == []


def test_an_unknown_field_our_checks_do_not_know_is_located_and_named(
    bundle_root: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(JOB, "notebook_path: ../notebooks/ingest.ipynb",
         "notebook_path: ../notebooks/ingest.ipynb\n            sourse: WORKSPACE")

    assert _issues(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'sourse')}: {PREFIX}.tasks[0].notebook_task.sourse: job "
        f"'daily_pipeline': Unexpected field 'sourse' for class NotebookTask {OFFICIAL}"
    ]


def test_an_unknown_field_in_a_target_override_is_caught(
    bundle_root: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(ROOT, "timeout_seconds: 1800",
         "timeout_seconds: 1800\n              health:\n                rules:\n"
         "                  - metrik: RUN_DURATION_SECONDS")

    assert _issues(bundle_root) == [
        f"{ROOT}:{line_of(ROOT, 'metrik')}: "
        "targets.prod.resources.jobs.daily_pipeline.tasks[0].health.rules[0].metrik: job "
        f"'daily_pipeline': Unexpected field 'metrik' for class JobsHealthRule {OFFICIAL}"
    ]


def test_our_located_check_stands_for_the_model_on_the_same_resource(
    bundle_root: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(JOB, "run_if: ALL_SUCCESS", "run_if: ALL_SUCCES")

    assert _issues(bundle_root) == [
        f"{JOB}:{line_of(JOB, 'run_if')}: {PREFIX}.tasks[3].run_if: run_if 'ALL_SUCCES' is not "
        "a run condition; did you mean 'ALL_SUCCESS'?"
    ]


def test_a_volume_without_its_schema_is_refused_and_a_complete_one_passes(
    bundle_root: Path,
) -> None:
    volumes = bundle_root / "resources" / "raw.volume.yml"
    volumes.write_text(
        "resources:\n"
        "  volumes:\n"
        "    raw:\n"
        "      catalog_name: ${var.catalog}\n"
        "      name: raw\n"
    )
    trees = {name: tree for name, tree in read_bundle_files(bundle_root).trees.items()
             if name == "resources/raw.volume.yml"}
    assert [str(issue) for issue in check_models(trees)] == [
        "resources/raw.volume.yml:3: resources.volumes.raw: volume 'raw': Volume.__init__() "
        f"missing 1 required keyword-only argument: 'schema_name' {OFFICIAL}"
    ]

    volumes.write_text(volumes.read_text() + "      schema_name: bronze\n")
    assert _issues(bundle_root) == []
