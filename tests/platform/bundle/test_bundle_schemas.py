"""Unity Catalog schema resources with grants: accepted, resolved per target, spell-checked."""

from __future__ import annotations

from pathlib import Path

from medallion.platform.bundle import load_bundle, validate_bundle

SCHEMAS = "resources/layers.schema.yml"
LAYERS = """\
resources:
  schemas:
    silver:
      catalog_name: ${var.catalog}
      name: silver
      lifecycle:
        prevent_destroy: true
      grants:
        - principal: data_analyst
          privileges: [USE_SCHEMA, SELECT]
"""


def _write(root: Path, text: str) -> None:
    (root / SCHEMAS).write_text(text)


def _errors(root: Path) -> list[str]:
    """The error-level issues of every target, without the JSON Schema check."""
    issues = validate_bundle(root, schema_path=root / "no-schema.json")
    return [str(issue) for issue in issues if issue.severity == "error"]


def test_schema_with_grants_passes_the_official_schema(
    bundle_root: Path, schema_path: Path
) -> None:
    _write(bundle_root, LAYERS)

    assert validate_bundle(bundle_root, schema_path=schema_path) == []


def test_schema_resource_is_resolved_for_the_target(bundle_root: Path) -> None:
    _write(bundle_root, LAYERS)

    bundle = load_bundle(bundle_root, "prod")

    assert bundle.config["resources"]["schemas"] == {
        "silver": {
            "catalog_name": "prod_catalog",
            "name": "silver",
            "lifecycle": {"prevent_destroy": True},
            "grants": [{"principal": "data_analyst", "privileges": ["USE_SCHEMA", "SELECT"]}],
        }
    }
    assert sorted(bundle.jobs) == ["daily_pipeline"]


def test_misspelled_privilege_is_caught_without_the_schema_file(bundle_root: Path) -> None:
    _write(bundle_root, LAYERS.replace("[USE_SCHEMA, SELECT]", "[USE SCHEMA, SELECT]"))

    assert _errors(bundle_root) == [
        f"{SCHEMAS}:10: resources.schemas.silver.grants[0].privileges[0]: 'USE SCHEMA' is not a "
        "Unity Catalog privilege; did you mean 'USE_SCHEMA'?"
    ]


def test_misspelled_grant_key_is_caught(bundle_root: Path) -> None:
    _write(bundle_root, LAYERS.replace("- principal:", "- principle:"))

    assert _errors(bundle_root) == [
        f"{SCHEMAS}:9: resources.schemas.silver.grants[0].principle: unknown key 'principle' in "
        "a grant of schema 'silver'; did you mean 'principal'?"
    ]


def test_misspelled_schema_key_is_caught(bundle_root: Path) -> None:
    _write(bundle_root, LAYERS.replace("catalog_name:", "catalog:"))

    assert _errors(bundle_root) == [
        f"{SCHEMAS}:4: resources.schemas.silver.catalog: unknown key 'catalog' in schema "
        "'silver'; did you mean 'catalog_name'?"
    ]
