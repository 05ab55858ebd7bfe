"""Bundle issues: one problem, where it is (file, line, YAML path), what is wrong and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from medallion.lakehouse.errors import BundleError

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class BundleIssue:
    """One problem, located by file (relative to the bundle root), line and YAML path."""

    file: str
    line: int
    yaml_path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        """Render as `file:line: yaml.path: message` (parts that are unknown are left out)."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [part for part in (where, self.yaml_path, self.message) if part]
        return ": ".join(parts)


class BundleInvalidError(BundleError):
    """The bundle has at least one error-level issue; `issues` holds every issue found."""

    def __init__(self, issues: Iterable[BundleIssue], root: str = "") -> None:
        self.issues = tuple(issues)
        errors = [issue for issue in self.issues if issue.severity == "error"]
        where = f" {root}" if root else ""
        lines = [f"bundle{where} is invalid ({len(errors)} error(s)):"]
        lines += [f"  {issue}" for issue in errors]
        super().__init__("\n".join(lines))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return `did you mean 'x'?` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else ""


def with_suggestion(message: str, word: str, candidates: Iterable[str], fallback: str) -> str:
    """Append a did-you-mean suggestion for `word`, or `fallback` when nothing is close."""
    suggestion = did_you_mean(word, candidates)
    tail = suggestion or fallback
    if not tail:
        return message
    return f"{message} {tail}" if tail.startswith("(") else f"{message}; {tail}"


def sort_issues(issues: Iterable[BundleIssue]) -> list[BundleIssue]:
    """Sort issues by file and line, dropping exact duplicates."""
    unique = dict.fromkeys(issues)
    return sorted(unique, key=lambda issue: (issue.file, issue.line, issue.yaml_path))
