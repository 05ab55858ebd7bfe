"""Loading a bundle for one target: overlay, variables, `${...}` interpolation, normalisation."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from medallion.lakehouse.errors import BundleError
from medallion.lakehouse.issues import BundleInvalidError, BundleIssue, sort_issues, with_suggestion
from medallion.lakehouse.yaml_positions import Node, child_path, iter_nodes, to_plain
from medallion.platform.bundle.files import BundleFiles, read_bundle_files
from medallion.platform.bundle.interpolation import Resolver
from medallion.platform.bundle.merge import copy_tree, merge, merge_keyed_job_lists
from medallion.platform.bundle.model import Bundle, SourcePosition
from medallion.platform.bundle.normalize import normalize_jobs
from medallion.platform.bundle.semantic import check_files, check_jobs

# Target fields merged into the root configuration (bundle/config/root.go MergeTargetOverrides).
_MERGED_TARGET_FIELDS = (
    "bundle",
    "workspace",
    "artifacts",
    "resources",
    "sync",
    "permissions",
    "presets",
)
_REPLACED_TARGET_FIELDS = ("run_as",)
_BUNDLE_TARGET_FIELDS = {"mode": "mode", "compute_id": "compute_id", "cluster_id": "cluster_id"}


def target_names(merged: Node) -> list[str]:
    """The names of the targets a bundle declares, in declaration order."""
    targets = merged.get("targets")
    return list(targets.value) if targets is not None and isinstance(targets.value, dict) else []


def select_target(merged: Node, target: str | None) -> str:
    """Return the target to use: the one asked for, else the `default: true` one, else the only."""
    names = target_names(merged)
    if target is not None:
        if target not in names and not (not names and target == "default"):
            listed = ", ".join(names) or "none (the implicit target is 'default')"
            message = with_suggestion(f"unknown target {target!r}", target, names, "")
            raise BundleError(f"{message} (targets: {listed})")
        return target
    if not names:
        return "default"
    targets = merged.value["targets"].value
    defaults = [
        name
        for name in names
        if isinstance(targets[name].value, dict)
        and (flag := targets[name].get("default")) is not None
        and flag.value is True
    ]
    if len(defaults) > 1:
        raise BundleError(f"targets {', '.join(defaults)} are all marked `default: true`; keep one")
    if defaults:
        return defaults[0]
    if len(names) == 1:
        return names[0]
    raise BundleError(
        f"no default target; pass a target (one of: {', '.join(names)}) "
        "or mark one of them `default: true`"
    )


def _set(parent: Node, key: str, value: object, at: Node) -> Node:
    """Set `parent[key]` to a new scalar/mapping node positioned at `at`; return it."""
    if not isinstance(parent.value, dict):
        parent.value = {}
    node = Node(value, at.file, at.line, child_path(parent.path, key))
    parent.value[key] = node
    return node


def _mapping(parent: Node, key: str) -> Node:
    """Return `parent[key]`, creating an empty mapping there when it is absent or not a mapping."""
    child = parent.get(key)
    if child is None or not isinstance(child.value, dict):
        child = _set(parent, key, {}, child or parent)
    return child


def _overlay_target(merged: Node, name: str, issues: list[BundleIssue]) -> tuple[Node, Node | None]:
    """Return a fresh copy of the configuration with target `name` overlaid, and the target."""
    targets = merged.get("targets")
    target = targets.get(name) if targets is not None else None
    config = Node({k: v for k, v in merged.value.items() if k != "targets"}, merged.file, 1, "")
    if target is not None and target.value is not None and not isinstance(target.value, dict):
        issues.append(BundleIssue(target.file, target.line, target.path, "a target is a mapping"))
        target = None
    if target is not None and isinstance(target.value, dict):
        for field in _MERGED_TARGET_FIELDS:
            if field in target.value:
                combined = merge(config.get(field), target.value[field], issues)
                if combined is not None:
                    config.value[field] = combined
        for field in _REPLACED_TARGET_FIELDS:
            if field in target.value:
                config.value[field] = target.value[field]
    config = copy_tree(config)
    if target is not None and isinstance(target.value, dict):
        bundle = _mapping(config, "bundle")
        for field, bundle_field in _BUNDLE_TARGET_FIELDS.items():
            if (value := target.get(field)) is not None:
                bundle.value[bundle_field] = copy_tree(value)
        if (git := target.get("git")) is not None:
            combined = merge(bundle.get("git"), copy_tree(git), issues)
            if combined is not None:
                bundle.value["git"] = combined
    merge_keyed_job_lists(config, issues)
    return config, target


def _variable_value(
    name: str,
    declaration: Node,
    override: Node | None,
    explicit: Mapping[str, str],
    environ: Mapping[str, str],
) -> tuple[Node | None, str]:
    """Pick a variable's value node by precedence: --var > BUNDLE_VAR_ > target > default."""
    is_complex = (kind := declaration.get("type")) is not None and kind.value == "complex"
    for given in (explicit.get(name), environ.get(f"BUNDLE_VAR_{name}")):
        if given is not None:
            value = json.loads(given) if is_complex else given
            return Node(value, declaration.file, declaration.line, declaration.path), ""
    if override is not None and isinstance(override.value, dict):
        if (default := override.get("default")) is not None:
            return default, ""
        if override.get("lookup") is not None:
            return None, "lookup"
    elif override is not None and override.value is not None:
        return override, ""
    if (default := declaration.get("default")) is not None:
        return default, ""
    if declaration.get("lookup") is not None:
        return None, "lookup"
    return None, "missing"


def _assign_variables(
    config: Node,
    target: Node | None,
    name: str,
    explicit: Mapping[str, str],
    environ: Mapping[str, str],
    issues: list[BundleIssue],
) -> None:
    """Set `variables.<v>.value` for every declared variable; report missing or unknown ones."""
    declared_node = _mapping(config, "variables")
    declared: dict[str, Node] = declared_node.value
    overrides_node = target.get("variables") if target is not None else None
    overrides = (
        overrides_node.value if overrides_node and isinstance(overrides_node.value, dict) else {}
    )
    for var, node in overrides.items():
        if var not in declared:
            message = f"variable {var!r} is assigned for target {name!r} but not declared"
            fix = "declare it under the top-level `variables:` mapping"
            issues.append(
                BundleIssue(
                    node.file, node.line, node.path, with_suggestion(message, var, declared, fix)
                )
            )
    for var in explicit:
        if var not in declared:
            message = with_suggestion(
                f"--var {var}=...: variable {var!r} is not declared",
                var,
                declared,
                "declare it under `variables:`",
            )
            issues.append(BundleIssue(config.file, 0, "variables", message))
    for var, declaration in declared.items():
        if not isinstance(declaration.value, dict):
            shorthand = declaration.value
            declaration.value = {}
            if shorthand is not None:
                _set(declaration, "default", shorthand, declaration)
        try:
            value, problem = _variable_value(
                var, declaration, overrides.get(var), explicit, environ
            )
        except json.JSONDecodeError as exc:
            message = f"variable {var!r} is complex; --var/BUNDLE_VAR_{var} must be JSON ({exc})"
            issues.append(
                BundleIssue(declaration.file, declaration.line, declaration.path, message)
            )
            continue
        if value is None:
            issues.append(_unset_variable_issue(var, declaration, name, problem))
            continue
        kind = declaration.get("type")
        if isinstance(value.value, dict | list) and (kind is None or kind.value != "complex"):
            message = (
                f"variable {var!r} has a {'mapping' if isinstance(value.value, dict) else 'list'} "
                "value; declare `type: complex` to use one"
            )
            issues.append(BundleIssue(value.file, value.line, value.path, message))
        declaration.value["value"] = copy_tree(value)


def _unset_variable_issue(var: str, declaration: Node, target: str, problem: str) -> BundleIssue:
    """Explain why a variable has no value and how to give it one."""
    how = f"--var {var}=... or env BUNDLE_VAR_{var}"
    if problem == "lookup":
        message = (
            f"variable {var!r} uses `lookup` for target {target!r}, which needs a Databricks "
            f"workspace; to run locally give it a value with {how}"
        )
    else:
        message = (
            f"variable {var!r} has no value for target {target!r}; set `default:` here, "
            f"targets.{target}.variables.{var}, {how}"
        )
    return BundleIssue(declaration.file, declaration.line, declaration.path, message)


def _short_name(user: str) -> str:
    """Derive the CLI's `current_user.short_name` from a user name."""
    return re.sub(r"[^A-Za-z0-9]", "_", user.split("@", 1)[0]).lower()


def _set_builtins(config: Node, root: Path, target: str, environ: Mapping[str, str]) -> None:
    """Set the values the CLI computes: bundle.target and the workspace paths and user."""
    bundle = _mapping(config, "bundle")
    _set(bundle, "target", target, bundle)
    workspace = _mapping(config, "workspace")
    # Locally the bundle runs in place: every workspace path is the bundle root.
    for key in ("root_path", "file_path"):
        _set(workspace, key, str(root), workspace.get(key) or workspace)
    local_state = root / ".databricks" / "bundle" / target
    for key, default in (("artifact_path", "artifacts"), ("state_path", "state")):
        if workspace.get(key) is None:
            _set(workspace, key, str(local_state / default), workspace)
    user = environ.get("USER") or "local"
    current_user = _set(workspace, "current_user", {}, workspace)
    _set(current_user, "userName", user, workspace)
    _set(current_user, "short_name", _short_name(user), workspace)


def resolve_target(
    files: BundleFiles,
    target: str | None = None,
    variables: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Bundle, list[BundleIssue]]:
    """Resolve the merged files for one target; returns the bundle and every problem found."""
    environ = os.environ if environ is None else environ
    name = select_target(files.merged, target)
    issues: list[BundleIssue] = []
    config, target_node = _overlay_target(files.merged, name, issues)
    _assign_variables(config, target_node, name, variables or {}, environ, issues)
    _set_builtins(config, files.root, name, environ)
    resolved = Resolver(config, issues).resolve()
    normalize_jobs(resolved, files.root, issues)
    plain = to_plain(resolved)
    bundle_section = plain.get("bundle") or {}
    bundle_name = bundle_section.get("name")
    if not isinstance(bundle_name, str) or not bundle_name:
        message = "the bundle has no name; add `bundle: {name: <name>}` to databricks.yml"
        issues.append(BundleIssue(files.root_file, 1, "bundle.name", message))
        bundle_name = files.root.name
    sources = {
        path: SourcePosition(node.file, node.line, node.path)
        for path, node in iter_nodes(resolved)
        if node.file
    }
    declared = plain.get("variables") or {}
    jobs = (plain.get("resources") or {}).get("jobs") or {}
    bundle = Bundle(
        root=files.root,
        name=bundle_name,
        target=name,
        mode=bundle_section.get("mode"),
        variables={var: spec.get("value") for var, spec in declared.items() if "value" in spec},
        jobs=jobs if isinstance(jobs, dict) else {},
        sources=sources,
        config=plain,
        files=tuple(files.trees),
    )
    return bundle, issues


def load_bundle(
    root: Path, target: str | None = None, variables: Mapping[str, str] | None = None
) -> Bundle:
    """Load and check the bundle at `root` for a target; `BundleInvalidError` lists every error."""
    files = read_bundle_files(Path(root))
    if files.unreadable:  # what follows would only report the gaps they leave
        raise BundleInvalidError(files.issues, str(files.root))
    bundle, issues = resolve_target(files, target, variables)
    found = sort_issues([*files.issues, *check_files(files.trees), *issues, *check_jobs(bundle)])
    if any(issue.severity == "error" for issue in found):
        raise BundleInvalidError(found, str(files.root))
    return dataclasses.replace(bundle, warnings=tuple(found))
