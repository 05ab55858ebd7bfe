"""The JSON Schema check against the vendored official bundle schema (skipped when absent)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medallion.platform.bundle import BundleIssue, find_schema, validate_bundle
from medallion.platform.bundle.files import read_bundle_files
from medallion.platform.bundle.schema import check_schema, schema_validator
from medallion.platform.bundle.vocabulary import (
    JOB_KEYS,
    PRIVILEGES,
    SCHEMA_KEYS,
    TARGET_KEYS,
    TASK_KEYS,
    TOP_LEVEL_KEYS,
)

JOB = "resources/daily_pipeline.job.yml"
PREFIX = "resources.jobs.daily_pipeline"
Edit = Callable[[str, str, str], None]
LineOf = Callable[[str, str], int]


def _schema_issues(root: Path, schema_path: Path) -> list[str]:
    """The schema check's issues for every file of the bundle at `root`."""
    return [str(issue) for issue in check_schema(read_bundle_files(root).trees, schema_path)]


def test_valid_bundle_passes_the_schema(bundle_root: Path, schema_path: Path) -> None:
    assert validate_bundle(bundle_root, schema_path=schema_path) == []


def test_schema_catches_a_wrongly_typed_field(
    bundle_root: Path, schema_path: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(JOB, "max_retries: ${var.max_retries}", 'max_retries: "three"')

    assert _schema_issues(bundle_root, schema_path) == [
        f"{JOB}:{line_of(JOB, 'max_retries')}: {PREFIX}.tasks[0].max_retries: expected an "
        "integer, found string 'three' (or a ${var.name} reference)"
    ]


def test_schema_names_a_missing_required_field_and_the_unknown_one(
    bundle_root: Path, schema_path: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(JOB, "notebook_path: ../notebooks/ingest.ipynb", "notebook_pth: ../notebooks/ingest.ipynb")

    line = line_of(JOB, "notebook_pth")
    assert _schema_issues(bundle_root, schema_path) == [
        f"{JOB}:{line}: {PREFIX}.tasks[0].notebook_task.notebook_pth: "
        "unknown key 'notebook_pth'; did you mean 'notebook_path'?",
        f"{JOB}:{line - 1}: {PREFIX}.tasks[0].notebook_task: "
        "'notebook_path' is a required property; add it",
    ]


def test_schema_catches_a_scalar_where_a_list_belongs(
    bundle_root: Path, schema_path: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(JOB, "on_failure:\n          - ${var.alert_email}", "on_failure: ops@example.com")

    assert _schema_issues(bundle_root, schema_path) == [
        f"{JOB}:{line_of(JOB, 'on_failure')}: {PREFIX}.email_notifications.on_failure: "
        "expected a list, found string 'ops@example.com' (or a ${var.name} reference)"
    ]


def test_schema_enum_suggests_the_closest_value(
    bundle_root: Path, schema_path: Path, edit: Edit, line_of: LineOf
) -> None:
    edit(JOB, "op: GREATER_THAN", "op: GREATER_THEN")

    assert _schema_issues(bundle_root, schema_path) == [
        f"{JOB}:{line_of(JOB, 'op:')}: {PREFIX}.tasks[1].condition_task.op: 'GREATER_THEN' is "
        "not allowed; did you mean 'GREATER_THAN'?"
    ]


def test_schema_path_from_the_environment(
    bundle_root: Path, schema_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDALLION_BUNDLE_SCHEMA", str(schema_path))

    assert find_schema() == (schema_path, f"$MEDALLION_BUNDLE_SCHEMA={schema_path}")


def test_missing_schema_from_the_environment_skips_the_check(
    bundle_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDALLION_BUNDLE_SCHEMA", "/nowhere/schema.json")

    assert validate_bundle(bundle_root) == [
        BundleIssue(
            "databricks.yml",
            0,
            "",
            "JSON Schema check skipped: no bundle schema at "
            "$MEDALLION_BUNDLE_SCHEMA=/nowhere/schema.json",
            "info",
        )
    ]


def test_validator_is_built_once(schema_path: Path) -> None:
    assert schema_validator(schema_path) is schema_validator(schema_path)


def test_schema_check_of_a_bundle_is_fast(bundle_root: Path, schema_path: Path) -> None:
    trees = read_bundle_files(bundle_root).trees
    check_schema(trees, schema_path)  # warm: loads and compiles the 900 KB schema

    started = time.perf_counter()
    check_schema(trees, schema_path)

    assert time.perf_counter() - started < 0.5


def _properties(schema: dict[str, Any], ref: str) -> set[str]:
    """The property names of a `$defs` entry (first oneOf branch when it has one)."""
    node = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    branch = node["oneOf"][0] if "oneOf" in node else node
    return set(branch["properties"])


def test_our_key_lists_match_the_vendored_schema(schema_path: Path) -> None:
    schema = json.loads(schema_path.read_text())
    defs = "#/$defs/github.com/databricks"

    assert set(schema["properties"]) == TOP_LEVEL_KEYS
    assert _properties(schema, f"{defs}/cli/bundle/config.Target") == TARGET_KEYS
    assert _properties(schema, f"{defs}/cli/bundle/config/resources.Job") == JOB_KEYS
    assert _properties(schema, f"{defs}/databricks-sdk-go/service/jobs.Task") == TASK_KEYS
    assert _properties(schema, f"{defs}/cli/bundle/config/resources.Schema") == SCHEMA_KEYS
    privilege = schema["$defs"]["github.com"]["databricks"]["databricks-sdk-go"]["service"][
        "catalog.Privilege"
    ]
    assert set(privilege["oneOf"][0]["enum"]) == PRIVILEGES
