"""The loaded bundle: resolved jobs for one target, and where each value was written."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medallion.lakehouse.issues import BundleIssue, Severity

_LAST_PART = re.compile(r'^(.*?)(\[(?:\d+|"(?:[^"\\]|\\.)*")\]|\.[A-Za-z0-9_-]+)$')


@dataclass(frozen=True)
class SourcePosition:
    """Where a value was written: file (relative to the bundle root), line, path in that file."""

    file: str
    line: int
    yaml_path: str


def split_last(path: str) -> tuple[str, str]:
    """Split `a.b[2]` into `('a.b', '[2]')` and `a` into `('', 'a')`."""
    match = _LAST_PART.match(path)
    if match is None:
        return "", path
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class Bundle:
    """A bundle resolved for one target; `jobs[key]` is a Jobs API job settings mapping."""

    root: Path
    name: str
    target: str
    mode: str | None
    variables: dict[str, Any]
    jobs: dict[str, dict[str, Any]]
    sources: dict[str, SourcePosition]
    config: dict[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    warnings: tuple[BundleIssue, ...] = ()

    def locate(self, yaml_path: str) -> SourcePosition:
        """Return where the value at a resolved path (`resources.jobs.j.tasks[0]`) was written."""
        suffix = ""
        path = yaml_path
        while path:
            position = self.sources.get(path)
            if position is not None:
                return SourcePosition(position.file, position.line, position.yaml_path + suffix)
            path, last = split_last(path)
            suffix = last + suffix
        first = self.files[0] if self.files else "databricks.yml"
        return SourcePosition(first, 0, yaml_path)

    def issue(self, yaml_path: str, message: str, severity: Severity = "error") -> BundleIssue:
        """Build an issue located at a resolved-config path (for the runner's own checks)."""
        position = self.locate(yaml_path)
        return BundleIssue(position.file, position.line, position.yaml_path, message, severity)

    def job_path(self, job_key: str, task_index: int | None = None) -> str:
        """Return the resolved-config path of a job, or of one of its tasks."""
        path = f"resources.jobs.{job_key}"
        return path if task_index is None else f"{path}.tasks[{task_index}]"
