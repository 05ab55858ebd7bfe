"""`validate_bundle`: the official models' check of each file plus our semantic checks, per target.

Structure comes from the ``databricks-bundles`` models (``medallion.platform.bundle.models``),
installed with the package, so every clone checks it. A JSON Schema of bundle files is an optional
second check, run only when one is given (``schema_path`` or ``$MEDALLION_BUNDLE_SCHEMA``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from medallion.lakehouse.issues import BundleInvalidError, BundleIssue, sort_issues
from medallion.platform.bundle.files import BundleFiles, read_bundle_files
from medallion.platform.bundle.loader import resolve_target, target_names
from medallion.platform.bundle.models import check_models
from medallion.platform.bundle.schema import check_schema, find_schema
from medallion.platform.bundle.semantic import check_deployment, check_files, check_jobs


def _per_target(
    files: BundleFiles,
    targets: list[str | None],
    variables: Mapping[str, str] | None,
) -> list[BundleIssue]:
    """Resolve and check each target; an issue found in only some targets names them."""
    seen_in: dict[BundleIssue, list[str]] = {}
    names: list[str] = []
    for target in targets:
        bundle, issues = resolve_target(files, target, variables, os.environ)
        names.append(bundle.target)
        for issue in [*issues, *check_jobs(bundle), *check_deployment(bundle)]:
            seen_in.setdefault(issue, []).append(bundle.target)
    found: list[BundleIssue] = []
    for issue, where in seen_in.items():
        if len(names) > 1 and len(where) < len(names):
            listed = ", ".join(repr(name) for name in where)
            noun = "target" if len(where) == 1 else "targets"
            issue = BundleIssue(
                issue.file,
                issue.line,
                issue.yaml_path,
                f"{issue.message} [{noun} {listed}]",
                issue.severity,
            )
        found.append(issue)
    return found


def validate_bundle(
    root: Path,
    target: str | None = None,
    schema_path: Path | None = None,
    variables: Mapping[str, str] | None = None,
) -> list[BundleIssue]:
    """Return every issue of the bundle at `root`: structure (per file) and semantics (per target).

    With `target=None` every target is checked. The JSON Schema check runs only when a schema is
    given; one that is named but missing is reported as an info-level issue.
    """
    files = read_bundle_files(Path(root))
    if not files.trees:  # the root file itself does not parse
        return sort_issues(files.issues)
    targets: list[str | None] = [target] if target else list(target_names(files.merged))
    issues = [*files.issues, *check_files(files.trees)]
    if not files.unreadable:  # else the targets would only report the gaps they leave
        issues += _per_target(files, targets or [None], variables)
    # Where our own check already explains a problem (with a did-you-mean), keep only ours.
    taken = {(i.file, i.line, i.yaml_path) for i in issues if i.severity == "error"}
    ours = [issue for issue in issues if issue.severity == "error"]
    structural = [
        issue for issue in _not_taken(check_models(files.trees), taken)
        if not _explained_within(issue, ours)
    ]
    issues += structural
    taken |= {(i.file, i.line, i.yaml_path) for i in structural}
    located, looked_for = find_schema(schema_path)
    if located is not None:
        issues += _not_taken(check_schema(files.trees, located), taken)
    elif looked_for:
        message = f"JSON Schema check skipped: no bundle schema at {looked_for}"
        issues.append(BundleIssue(files.root_file, 0, "", message, "info"))
    return sort_issues(issues)


def _explained_within(issue: BundleIssue, ours: list[BundleIssue]) -> bool:
    """True when a model's issue names a whole resource and one of ours is inside it.

    A model stops at the first problem of a resource and reports it there; our check then
    already names the field, with a fix. An issue a model places on a field stays.
    """
    return any(
        mine.file == issue.file and mine.yaml_path.startswith(issue.yaml_path)
        for mine in ours
    ) and _is_resource_path(issue.yaml_path)


def _is_resource_path(path: str) -> bool:
    """``resources.<kind>.<key>`` or ``targets.<t>.resources.<kind>.<key>`` exactly."""
    parts = path.split(".")
    return (len(parts) == 3 and parts[0] == "resources") or (
        len(parts) == 5 and parts[0] == "targets" and parts[2] == "resources"
    )


def _not_taken(
    found: list[BundleIssue], taken: set[tuple[str, int, str]]
) -> list[BundleIssue]:
    """The issues at a place no error of ours already explains."""
    return [issue for issue in found if (issue.file, issue.line, issue.yaml_path) not in taken]


def check_bundle(
    root: Path,
    target: str | None = None,
    schema_path: Path | None = None,
    variables: Mapping[str, str] | None = None,
) -> list[BundleIssue]:
    """Validate the bundle; raise `BundleInvalidError` listing every error, else return the rest."""
    issues = validate_bundle(root, target, schema_path, variables)
    if any(issue.severity == "error" for issue in issues):
        raise BundleInvalidError(issues, str(Path(root).resolve()))
    return issues
