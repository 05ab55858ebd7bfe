"""`validate_bundle`: schema check of each file plus our semantic checks, for every target."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from medallion.bundle.files import BundleFiles, read_bundle_files
from medallion.bundle.issues import BundleInvalidError, BundleIssue, sort_issues
from medallion.bundle.loader import resolve_target, target_names
from medallion.bundle.schema import SCHEMA_ENV, check_schema, find_schema
from medallion.bundle.semantic import check_files, check_jobs


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
        for issue in [*issues, *check_jobs(bundle)]:
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
    """Return every issue of the bundle at `root`: schema (per file) and semantic (per target).

    With `target=None` every target is checked. When the schema file cannot be found the schema
    check is skipped and an info-level issue says so.
    """
    files = read_bundle_files(Path(root))
    if not files.trees:  # the root file itself does not parse
        return sort_issues(files.issues)
    targets: list[str | None] = [target] if target else list(target_names(files.merged))
    issues = [*files.issues, *check_files(files.trees)]
    if not files.unreadable:  # else the targets would only report the gaps they leave
        issues += _per_target(files, targets or [None], variables)
    located, looked_for = find_schema(files.root, schema_path)
    if located is None:
        message = (
            f"JSON Schema check skipped: no bundle schema at {looked_for}; "
            f"set {SCHEMA_ENV} or pass schema_path to enable it"
        )
        issues.append(BundleIssue(files.root_file, 0, "", message, "info"))
    else:
        # Where our own check already explains a problem (with a did-you-mean), keep only ours.
        taken = {(i.file, i.line, i.yaml_path) for i in issues if i.severity == "error"}
        issues += [
            issue
            for issue in check_schema(files.trees, located)
            if (issue.file, issue.line, issue.yaml_path) not in taken
        ]
    return sort_issues(issues)


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
