"""After interpolation: absolute notebook paths and typed numbers, as the CLI normalises a job."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from medallion.lakehouse.issues import BundleIssue
from medallion.lakehouse.yaml_positions import Node, job_nodes

# Fields the Jobs API types as integers or booleans; a `${var.x}` set from the environment or
# `--var` arrives as a string, and the CLI converts it when it normalises the configuration.
_JOB_INTS = ("timeout_seconds", "max_concurrent_runs")
_TASK_INTS = ("max_retries", "min_retry_interval_millis", "timeout_seconds")
_TASK_BOOLS = ("retry_on_timeout", "disabled")


def _coerce(node: Node | None, kind: type, issues: list[BundleIssue]) -> None:
    """Turn a numeric/boolean string into an int/bool in place; report anything else."""
    if node is None or not isinstance(node.value, str):
        return
    text = node.value.strip()
    if kind is int and text.lstrip("-").isdigit():
        node.value = int(text)
    elif kind is bool and text.lower() in {"true", "false"}:
        node.value = text.lower() == "true"
    else:
        noun = "an integer" if kind is int else "true or false"
        message = f"expected {noun}, found {node.value!r}; fix the value or the variable behind it"
        issues.append(BundleIssue(node.file, node.line, node.path, message))


def _coerce_health(container: Node, issues: list[BundleIssue]) -> None:
    """Coerce the `value` of each health rule to an integer."""
    health = container.get("health")
    rules = health.get("rules") if health is not None else None
    if rules is not None and isinstance(rules.value, list):
        for rule in rules.value:
            _coerce(rule.get("value"), int, issues)


def _candidates(path: str, base: Path) -> list[Path]:
    """The files a notebook path may mean: as written, then with `.ipynb` (Databricks style)."""
    written = Path(path) if Path(path).is_absolute() else base / path
    written = Path(os.path.normpath(written))
    if written.suffix == ".ipynb":
        return [written]
    return [written, written.with_name(written.name + ".ipynb")]


def resolve_notebook_path(node: Node, root: Path, issues: list[BundleIssue]) -> None:
    """Make a notebook path absolute (relative to its YAML file) and check the notebook exists."""
    if not isinstance(node.value, str) or not node.value:
        return
    base = (root / node.file).parent if node.file else root
    candidates = _candidates(node.value, base)
    for candidate in candidates:
        if candidate.is_file():
            node.value = str(candidate)
            return
    looked = " or ".join(str(candidate) for candidate in candidates)
    message = f"notebook {node.value!r} not found (looked for {looked})"
    folder = candidates[-1].parent
    siblings = sorted(p.stem for p in folder.glob("*.ipynb")) if folder.is_dir() else []
    close = difflib.get_close_matches(candidates[0].stem, siblings, n=1, cutoff=0.6)
    if close:
        message += f"; did you mean {close[0]!r}?"
    elif node.value.startswith(("/Workspace/", "/Users/", "/Repos/")):
        message += "; a workspace path cannot run locally, use a path relative to the YAML file"
    elif not folder.is_dir():
        message += f"; folder {folder} does not exist"
    message += f" (paths are relative to {node.file or 'the bundle root'})"
    issues.append(BundleIssue(node.file, node.line, node.path, message))
    node.value = str(candidates[-1])


def _normalize_task(task: Node, root: Path, uses_git: bool, issues: list[BundleIssue]) -> None:
    """Normalise one task (and the task nested in a for_each_task)."""
    if not isinstance(task.value, dict):
        return
    notebook = task.get("notebook_task")
    if notebook is not None and isinstance(notebook.value, dict):
        source = notebook.get("source")
        from_git = source.value == "GIT" if source is not None else uses_git
        path = notebook.get("notebook_path")
        if path is not None and not from_git:
            resolve_notebook_path(path, root, issues)
    for name in _TASK_INTS:
        _coerce(task.get(name), int, issues)
    for name in _TASK_BOOLS:
        _coerce(task.get(name), bool, issues)
    _coerce_health(task, issues)
    for dependency in _items(task.get("depends_on")):
        outcome = dependency.get("outcome")
        if outcome is not None and isinstance(outcome.value, bool):
            outcome.value = "true" if outcome.value else "false"  # the API wants a string
    loop = task.get("for_each_task")
    if loop is not None and isinstance(loop.value, dict):
        _coerce(loop.get("concurrency"), int, issues)
        nested = loop.get("task")
        if nested is not None:
            _normalize_task(nested, root, uses_git, issues)


def _items(node: Node | None) -> list[Node]:
    """The items of a list node (empty for anything else)."""
    return list(node.value) if node is not None and isinstance(node.value, list) else []


def normalize_jobs(config: Node, root: Path, issues: list[BundleIssue]) -> None:
    """Normalise, in place, every job of a resolved configuration."""
    for job in job_nodes(config):
        for name in _JOB_INTS:
            _coerce(job.get(name), int, issues)
        _coerce_health(job, issues)
        queue = job.get("queue")
        if queue is not None:
            _coerce(queue.get("enabled"), bool, issues)
        uses_git = job.get("git_source") is not None
        for task in _items(job.get("tasks")):
            _normalize_task(task, root, uses_git, issues)
