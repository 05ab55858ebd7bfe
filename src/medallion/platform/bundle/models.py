"""Structural check of bundle resources with the official Databricks Asset Bundles models.

``databricks-bundles`` (PyPI, Databricks' own Python support for bundles) has a typed model of
each resource kind; its ``from_dict`` refuses an unknown field or a value of the wrong type, as
the Databricks CLI's validation does, and accepts ``${…}`` references wherever a value may be
one. Every clone gets this check: it needs no schema file, only the installed package.

Each ``resources.<kind>.<key>`` mapping of each file is checked, and each target's
``targets.<name>.resources`` overrides too (an override may leave out required fields: the
resource it overrides has them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib.metadata import version
from typing import Any

from databricks.bundles.jobs import Job
from databricks.bundles.pipelines import Pipeline
from databricks.bundles.schemas import Schema
from databricks.bundles.secret_scopes import SecretScope
from databricks.bundles.volumes import Volume

from medallion.lakehouse.issues import BundleIssue
from medallion.lakehouse.yaml_positions import Node, child_path, iter_nodes, to_plain

# The resource kinds this repository declares, by their key under ``resources``. A kind not
# listed here is left to the semantic checks (and, in tests, the vendored JSON Schema).
RESOURCE_MODELS: Mapping[str, Any] = {
    "jobs": Job,
    "pipelines": Pipeline,
    "schemas": Schema,
    "secret_scopes": SecretScope,
    "volumes": Volume,
}
_UNEXPECTED_FIELD = re.compile(r"Unexpected field '(?P<field>[^']+)' for class (?P<cls>\w+)")
_MISSING_REQUIRED = re.compile(r"missing \d+ required (keyword-only |positional )?arguments?")


def models_version() -> str:
    """The installed ``databricks-bundles`` version, named in every issue it raises."""
    return version("databricks-bundles")


def check_models(trees: Mapping[str, Node]) -> list[BundleIssue]:
    """Every resource of every file that its official model refuses, located and explained."""
    issues: list[BundleIssue] = []
    for tree in trees.values():
        for kind, key, node, path, partial in _resources(tree):
            issue = _check_resource(kind, key, node, path, partial)
            if issue is not None:
                issues.append(issue)
    return issues


def _resources(tree: Node) -> Iterator[tuple[str, str, Node, str, bool]]:
    """``(kind, key, node, yaml path, is an override)`` of each resource the file declares."""
    yield from _resources_under(tree.get("resources"), "resources", partial=False)
    targets = tree.get("targets")
    if targets is not None and isinstance(targets.value, dict):
        for name, target in targets.value.items():
            path = child_path(child_path("targets", name), "resources")
            yield from _resources_under(target.get("resources"), path, partial=True)


def _resources_under(
    resources: Node | None, path: str, *, partial: bool
) -> Iterator[tuple[str, str, Node, str, bool]]:
    if resources is None or not isinstance(resources.value, dict):
        return
    for kind, entries in resources.value.items():
        if kind not in RESOURCE_MODELS or not isinstance(entries.value, dict):
            continue
        for key, node in entries.value.items():
            if isinstance(node.value, dict):
                yield kind, key, node, child_path(child_path(path, kind), key), partial


def _check_resource(
    kind: str, key: str, node: Node, path: str, partial: bool
) -> BundleIssue | None:
    """The issue the model raises on one resource mapping, or None when it accepts it."""
    try:
        RESOURCE_MODELS[kind].from_dict(to_plain(node))
    except (TypeError, ValueError) as error:
        message = str(error)
        if partial and _MISSING_REQUIRED.search(message):
            return None
        at, at_path = _locate(node, path, message)
        singular = kind.removesuffix("s")
        return BundleIssue(
            node.file,
            at.line,
            at_path,
            f"{singular} {key!r}: {message} (official model, databricks-bundles "
            f"{models_version()})",
        )
    return None


def _locate(node: Node, path: str, message: str) -> tuple[Node, str]:
    """The node an error names (an unexpected field), else the resource itself."""
    unexpected = _UNEXPECTED_FIELD.search(message)
    if unexpected is not None:
        field = unexpected.group("field")
        for relative, child in iter_nodes(node):
            if isinstance(child.value, dict) and field in child.value:
                found = child.value[field]
                return found, child_path(_join(path, relative), field)
    return node, path


def _join(path: str, relative: str) -> str:
    """``relative`` (a path inside a resource, maybe starting with ``[i]``) under ``path``."""
    if not relative:
        return path
    return f"{path}{relative}" if relative.startswith("[") else f"{path}.{relative}"
