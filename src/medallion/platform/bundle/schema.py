"""Optional JSON Schema check of each bundle file (the official schema, when one is given)."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import regex
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator

from medallion.lakehouse.issues import BundleIssue, with_suggestion
from medallion.lakehouse.yaml_positions import Node, child_path, node_at, to_plain

SCHEMA_ENV = "MEDALLION_BUNDLE_SCHEMA"
_JSON_TYPES = {
    dict: "mapping",
    list: "list",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}
_EXPECTED = {
    "object": "a mapping",
    "array": "a list",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "string": "a string",
}


def find_schema(schema_path: Path | None = None) -> tuple[Path | None, str]:
    """The JSON Schema to check against: the argument, else $MEDALLION_BUNDLE_SCHEMA, else none.

    Returns the path (None when absent or not given) and where it looked ("" when nowhere).
    """
    if schema_path is not None:
        return (schema_path if schema_path.is_file() else None), str(schema_path)
    from_env = os.environ.get(SCHEMA_ENV)
    if from_env:
        return (Path(from_env) if Path(from_env).is_file() else None), f"${SCHEMA_ENV}={from_env}"
    return None, ""


def _regex_pattern(
    validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """`pattern` with the `regex` package: the schema uses \\p{L}, which `re` rejects."""
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> regex.Pattern[str]:
    """Compile a schema pattern once."""
    return regex.compile(pattern)


BundleSchemaValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _regex_pattern}
)


@functools.lru_cache(maxsize=4)
def _cached_validator(path: str, mtime_ns: int) -> Validator:
    """Load and build the validator for a schema file once per (path, mtime)."""
    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    validator: Validator = BundleSchemaValidator(schema)
    return validator


def schema_validator(path: Path) -> Validator:
    """Return the (cached) validator for the schema at `path`."""
    return _cached_validator(str(path.resolve()), path.stat().st_mtime_ns)


def _branch_schemas(error: ValidationError) -> list[Any]:
    """The list value of the failed keyword (oneOf/anyOf branches, enum choices)."""
    value = error.validator_value
    return list(value) if isinstance(value, list) else []


def _is_reference_branch(schema: Any) -> bool:
    """Whether a oneOf branch only admits a `${...}` reference string."""
    return (
        isinstance(schema, dict)
        and schema.get("type") == "string"
        and str(schema.get("pattern", "")).startswith("\\$\\{")
    )


def _fits(errors: Sequence[ValidationError]) -> bool:
    """Whether the instance has the right kind for a branch (its errors are deeper or finer)."""
    for error in errors:
        if error.relative_path:
            continue
        if error.validator == "type":
            return False
        if error.validator in ("oneOf", "anyOf") and error.context:
            branches = _branches(error)
            if not any(_fits(branch) for i, branch in branches.items() if _usable(error, i)):
                return False
    return True


def _branches(error: ValidationError) -> dict[int, list[ValidationError]]:
    """Group the errors of a oneOf/anyOf by the branch they came from."""
    grouped: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        grouped.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    return grouped


def _usable(error: ValidationError, branch: int) -> bool:
    """A `${...}`-only branch is considered only when the value looks like a reference."""
    branch_schema = _branch_schemas(error)[branch]
    looks_like_reference = isinstance(error.instance, str) and "${" in error.instance
    return looks_like_reference or not _is_reference_branch(branch_schema)


def leaf_errors(error: ValidationError) -> list[ValidationError]:
    """Replace a oneOf/anyOf error by the errors of the branch the value was meant for."""
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [error]
    branches = _branches(error)
    fitting = [
        i
        for i in range(len(_branch_schemas(error)))
        if _usable(error, i) and i in branches and _fits(branches[i])
    ]
    if len(fitting) == 1:
        return [leaf for sub in branches[fitting[0]] for leaf in leaf_errors(sub)]
    if fitting:
        best = best_match([sub for i in fitting for sub in branches[i]])
        return leaf_errors(best) if best is not None else [error]
    return [error]


def _expected_types(error: ValidationError) -> str:
    """Describe the kinds of value a oneOf/anyOf/type error accepts."""
    schemas = _branch_schemas(error) if error.validator in ("oneOf", "anyOf") else [error.schema]
    kinds: list[str] = []
    for schema in schemas:
        if isinstance(schema, dict) and not _is_reference_branch(schema):
            types = schema.get("type")
            for kind in types if isinstance(types, list) else [types]:
                if kind in _EXPECTED and _EXPECTED[kind] not in kinds:
                    kinds.append(_EXPECTED[kind])
    return " or ".join(kinds) or "a different value"


def _describe(value: Any) -> str:
    """Name a value's kind, and show it when it is a scalar."""
    kind = _JSON_TYPES.get(type(value), type(value).__name__)
    return f"{kind} {value!r}" if not isinstance(value, dict | list) else kind


def _issues_for(error: ValidationError, tree: Node) -> Iterator[BundleIssue]:
    """Turn one leaf validation error into located issues with a fix."""
    parts = list(error.absolute_path)
    node = node_at(tree, parts)
    path = ""
    for part in parts:
        path = child_path(path, part)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = list(schema.get("properties", {}))
        for key in error.instance:
            if key in allowed:
                continue
            child = node.get(key) or node
            message = with_suggestion(
                f"unknown key {key!r}", key, allowed, "remove it or fix its spelling"
            )
            yield BundleIssue(tree.file, child.line, child_path(path, key), message)
        return
    if error.validator in ("type", "oneOf", "anyOf"):
        message = f"expected {_expected_types(error)}, found {_describe(error.instance)}"
        if error.validator != "type":
            message += " (or a ${var.name} reference)"
    elif error.validator == "enum":
        choices = [str(choice) for choice in _branch_schemas(error)]
        message = with_suggestion(
            f"{error.instance!r} is not allowed",
            str(error.instance),
            choices,
            f"use one of {', '.join(choices)}",
        )
    elif error.validator == "required":
        message = f"{error.message}; add it"
    else:
        message = error.message
    yield BundleIssue(tree.file, node.line, path or node.path, message)


def check_schema(trees: Mapping[str, Node], schema_path: Path) -> list[BundleIssue]:
    """Validate each file, as written (before interpolation), against the bundle schema."""
    validator = schema_validator(schema_path)
    issues: list[BundleIssue] = []
    for tree in trees.values():
        for error in validator.iter_errors(to_plain(tree)):
            for leaf in leaf_errors(error):
                issues += _issues_for(leaf, tree)
    return issues
