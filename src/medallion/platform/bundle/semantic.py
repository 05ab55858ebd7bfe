"""Our own checks: what the JSON schema cannot see (task graph, references, spelling)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from medallion.lakehouse.issues import BundleIssue, Severity, did_you_mean, with_suggestion
from medallion.lakehouse.yaml_positions import Node, child_path
from medallion.platform.bundle.model import Bundle
from medallion.platform.bundle.vocabulary import (
    DEPENDENCY_KEYS,
    DEPRECATED_TOP_LEVEL_KEYS,
    DYNAMIC_ROOTS,
    FOR_EACH_KEYS,
    GRANT_KEYS,
    JOB_KEYS,
    OUTCOME_VALUES,
    PRIVILEGES,
    RUN_IF_VALUES,
    SCHEMA_KEYS,
    TARGET_KEYS,
    TASK_KEYS,
    TASK_TYPES,
    TOP_LEVEL_KEYS,
    VARIABLE_KEYS,
)

DYNAMIC_REFERENCE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


def _unknown_keys(
    node: Node | None, allowed: frozenset[str], where: str = ""
) -> Iterator[BundleIssue]:
    """Report keys of a mapping that are not in `allowed`, each with a did-you-mean."""
    if node is None or not isinstance(node.value, dict):
        return
    listing = f"allowed: {', '.join(sorted(allowed))}" if len(allowed) <= 16 else ""
    fallback = f"remove it ({listing})" if listing else "remove it or fix its spelling"
    for key, child in node.value.items():
        if key not in allowed:
            what = f"unknown key {key!r} in {where}" if where else f"unknown top-level key {key!r}"
            message = with_suggestion(what, key, allowed, fallback)
            yield BundleIssue(child.file, child.line, child.path, message)


def _items(node: Node | None) -> list[Node]:
    """The items of a list node (empty for anything else)."""
    return list(node.value) if node is not None and isinstance(node.value, list) else []


def _entries(node: Node | None) -> list[tuple[str, Node]]:
    """The entries of a mapping node (empty for anything else)."""
    return list(node.value.items()) if node is not None and isinstance(node.value, dict) else []


def _raw_task_checks(task: Node, where: str) -> Iterator[BundleIssue]:
    """Spelling checks of one task as written (keys of the task, its dependencies, its loop)."""
    key_node = task.get("task_key")
    label = f"task {key_node.value!r}" if key_node is not None else f"a task of {where}"
    yield from _unknown_keys(task, TASK_KEYS, label)
    for dependency in _items(task.get("depends_on")):
        yield from _unknown_keys(dependency, DEPENDENCY_KEYS, f"a depends_on of {label}")
    loop = task.get("for_each_task")
    yield from _unknown_keys(loop, FOR_EACH_KEYS, f"the for_each_task of {label}")
    nested = loop.get("task") if loop is not None else None
    if nested is not None and isinstance(nested.value, dict):
        yield from _raw_task_checks(nested, f"the for_each_task of {label}")


def _raw_job_checks(jobs: Node | None) -> Iterator[BundleIssue]:
    """Spelling checks and duplicate task keys of the jobs of one file (or target)."""
    for job_key, job in _entries(jobs):
        yield from _unknown_keys(job, JOB_KEYS, f"job {job_key!r}")
        seen: dict[str, Node] = {}
        for task in _items(job.get("tasks")):
            if not isinstance(task.value, dict):
                continue
            key_node = task.get("task_key")
            if key_node is not None and isinstance(key_node.value, str):
                first = seen.setdefault(key_node.value, key_node)
                if first is not key_node:
                    message = (
                        f"duplicate task_key {key_node.value!r} in job {job_key!r} "
                        f"(first at line {first.line}); task keys must be unique, rename one"
                    )
                    yield BundleIssue(key_node.file, key_node.line, key_node.path, message)
            yield from _raw_task_checks(task, f"job {job_key!r}")


def _raw_schema_checks(schemas: Node | None) -> Iterator[BundleIssue]:
    """Spelling checks of the Unity Catalog schemas of one file (or target) and their grants."""
    for schema_key, schema in _entries(schemas):
        yield from _unknown_keys(schema, SCHEMA_KEYS, f"schema {schema_key!r}")
        for grant in _items(schema.get("grants")):
            yield from _unknown_keys(grant, GRANT_KEYS, f"a grant of schema {schema_key!r}")
            privileges = grant.get("privileges") if isinstance(grant.value, dict) else None
            for privilege in _items(privileges):
                value = privilege.value
                if isinstance(value, str) and value not in PRIVILEGES and "${" not in value:
                    message = with_suggestion(
                        f"{value!r} is not a Unity Catalog privilege",
                        value,
                        PRIVILEGES,
                        "see the privileges of catalog.Privilege (e.g. USE_SCHEMA, SELECT)",
                    )
                    yield BundleIssue(privilege.file, privilege.line, privilege.path, message)


def check_files(trees: Mapping[str, Node]) -> list[BundleIssue]:
    """Check each file as written: unknown keys (with did-you-mean) and duplicate task keys."""
    issues: list[BundleIssue] = []
    for tree in trees.values():
        issues += _unknown_keys(tree, TOP_LEVEL_KEYS)
        for old, new in DEPRECATED_TOP_LEVEL_KEYS.items():
            if (node := tree.get(old)) is not None:
                message = f"{old!r} is deprecated; rename it to {new!r}"
                issues.append(BundleIssue(node.file, node.line, node.path, message, "warning"))
        for name, declaration in _entries(tree.get("variables")):
            issues += _unknown_keys(declaration, VARIABLE_KEYS, f"variable {name!r}")
        resources = tree.get("resources")
        issues += _raw_job_checks(resources.get("jobs") if resources is not None else None)
        issues += _raw_schema_checks(resources.get("schemas") if resources is not None else None)
        for name, target in _entries(tree.get("targets")):
            issues += _unknown_keys(target, TARGET_KEYS, f"target {name!r}")
            overrides = target.get("resources")
            issues += _raw_job_checks(overrides.get("jobs") if overrides is not None else None)
            issues += _raw_schema_checks(
                overrides.get("schemas") if overrides is not None else None
            )
    return issues


def _strings(
    value: Any, path: str, skip: frozenset[str] = frozenset()
) -> Iterator[tuple[str, str]]:
    """Yield `(path, text)` for every string under a plain value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                yield from _strings(item, child_path(path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, child_path(path, index))


class _JobChecker:
    """Checks one resolved job: task types, run_if, the task graph and `{{...}}` references."""

    def __init__(self, bundle: Bundle, job_key: str, job: dict[str, Any]) -> None:
        self.bundle = bundle
        self.job_key = job_key
        self.job = job
        self.path = f"resources.jobs.{job_key}"
        self.issues: list[BundleIssue] = []
        raw_tasks = job.get("tasks")
        self.tasks: list[Any] = raw_tasks if isinstance(raw_tasks, list) else []
        self.index: dict[str, int] = {}
        for i, task in enumerate(self.tasks):
            key = task.get("task_key") if isinstance(task, dict) else None
            if isinstance(key, str) and key:
                self.index.setdefault(key, i)
        self.parameters = [
            p.get("name") for p in job.get("parameters") or [] if isinstance(p, dict)
        ]

    def _add(self, path: str, message: str, severity: Severity = "error") -> None:
        self.issues.append(self.bundle.issue(path, message, severity))

    def _dependencies(self, task: dict[str, Any]) -> list[tuple[int, str]]:
        """The `(index, task_key)` of each dependency of a task."""
        deps = task.get("depends_on")
        return [
            (j, dep["task_key"])
            for j, dep in enumerate(deps if isinstance(deps, list) else [])
            if isinstance(dep, dict) and isinstance(dep.get("task_key"), str)
        ]

    def _ancestors(self, key: str) -> set[str]:
        """Every task upstream of `key`, transitively."""
        seen: set[str] = set()
        pending = [key]
        while pending:
            current = self.tasks[self.index[pending.pop()]]
            for _, dep in self._dependencies(current):
                if dep in self.index and dep not in seen:
                    seen.add(dep)
                    pending.append(dep)
        return seen

    def run(self) -> list[BundleIssue]:
        """Run every check of the job and return the issues."""
        for i, task in enumerate(self.tasks):
            if isinstance(task, dict):
                self._check_task(f"{self.path}.tasks[{i}]", task)
        self._check_cycles()
        for path, text in _strings(self.job, self.path, skip=frozenset({"tasks"})):
            self._check_dynamic(path, text, None)
        return self.issues

    def _check_task(self, path: str, task: dict[str, Any], nested: bool = False) -> None:
        """Check one task (and the task nested in its for_each_task)."""
        key = task.get("task_key")
        if not isinstance(key, str) or not key:
            self._add(path, "a task needs a task_key; add `task_key: <name>`")
        types = sorted(name for name in task if name in TASK_TYPES)
        if not types:
            listing = ", ".join(sorted(TASK_TYPES))
            self._add(path, f"task {key!r} has no task type; add exactly one of: {listing}")
        elif len(types) > 1:
            self._add(
                path, f"task {key!r} has {len(types)} task types ({', '.join(types)}); keep one"
            )
        run_if = task.get("run_if")
        if run_if is not None and run_if not in RUN_IF_VALUES:
            message = with_suggestion(
                f"run_if {run_if!r} is not a run condition",
                str(run_if),
                RUN_IF_VALUES,
                f"use one of {', '.join(RUN_IF_VALUES)}",
            )
            self._add(f"{path}.run_if", message)
        self._check_references_to_compute(path, task)
        if not nested:
            self._check_dependencies(path, task)
            for text_path, text in _strings(task, path):
                self._check_dynamic(text_path, text, key if isinstance(key, str) else None)
        loop = task.get("for_each_task")
        if isinstance(loop, dict) and isinstance(loop.get("task"), dict):
            self._check_task(f"{path}.for_each_task.task", loop["task"], nested=True)

    def _check_references_to_compute(self, path: str, task: dict[str, Any]) -> None:
        """job_cluster_key / environment_key must name a job cluster / environment of the job."""
        for field, container, key_name in (
            ("job_cluster_key", "job_clusters", "job_cluster_key"),
            ("environment_key", "environments", "environment_key"),
        ):
            value = task.get(field)
            if value is None:
                continue
            known = [
                str(item[key_name])
                for item in self.job.get(container) or []
                if isinstance(item, dict) and isinstance(item.get(key_name), str)
            ]
            if value not in known:
                message = with_suggestion(
                    f"{value!r} is not in {container} of job {self.job_key!r}",
                    str(value),
                    known,
                    f"({container}: {', '.join(known) or 'none'}); declare it under {container}",
                )
                self._add(f"{path}.{field}", message)

    def _check_dependencies(self, path: str, task: dict[str, Any]) -> None:
        """Each depends_on names a task of the job; outcome only on a condition_task."""
        names = list(self.index)
        for j, dep in self._dependencies(task):
            dep_path = f"{path}.depends_on[{j}]"
            if dep not in self.index:
                message = f"{dep!r} is not a task of job {self.job_key!r}"
                suggestion = did_you_mean(dep, names)
                message += f"; {suggestion}" if suggestion else ""
                self._add(f"{dep_path}.task_key", f"{message} (tasks: {', '.join(names)})")
                continue
            outcome = task["depends_on"][j].get("outcome")
            if outcome is None:
                continue
            upstream = self.tasks[self.index[dep]]
            if "condition_task" not in upstream:
                kind = next((name for name in upstream if name in TASK_TYPES), "task")
                message = (
                    f"outcome is only allowed on a dependency on a condition_task, and {dep!r} "
                    f"is a {kind}; remove outcome"
                )
                self._add(f"{dep_path}.outcome", message)
            elif outcome not in OUTCOME_VALUES:
                message = f'outcome must be "true" or "false", found {outcome!r}'
                self._add(f"{dep_path}.outcome", message)

    def _check_cycles(self) -> None:
        """Report each dependency cycle once, at the depends_on entry that closes it."""
        reported: set[frozenset[str]] = set()
        state: dict[str, str] = {}
        stack: list[str] = []

        def visit(key: str) -> None:
            state[key] = "active"
            stack.append(key)
            index = self.index[key]
            for j, dep in self._dependencies(self.tasks[index]):
                if dep not in self.index:
                    continue
                if state.get(dep) == "active":
                    cycle = [*stack[stack.index(dep) :], dep]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        chain = " -> ".join(cycle)
                        message = (
                            f"dependency cycle: {chain} (each depends on the next); "
                            "remove one of these depends_on"
                        )
                        self._add(f"{self.path}.tasks[{index}].depends_on[{j}].task_key", message)
                elif dep not in state:
                    visit(dep)
            stack.pop()
            state[key] = "done"

        for key in self.index:
            if key not in state:
                visit(key)

    def _check_dynamic(self, path: str, text: str, task_key: str | None) -> None:
        """Check `{{tasks.<t>.values.<v>}}` and `{{job.parameters.<p>}}` references in a string."""
        for match in DYNAMIC_REFERENCE.finditer(text):
            expression = match.group(1)
            parts = expression.split(".")
            root = parts[0]
            if root == "tasks" and len(parts) >= 3 and task_key is not None:
                self._check_task_reference(path, match.group(0), parts[1], task_key)
            elif root == "job" and len(parts) >= 3 and parts[1] == "parameters":
                self._check_job_parameter(path, match.group(0), parts[2])
            elif root not in DYNAMIC_ROOTS and not root.startswith("secrets/"):
                message = with_suggestion(
                    f"{match.group(0)} is not a known dynamic value reference",
                    root,
                    DYNAMIC_ROOTS,
                    "see the Jobs documentation on dynamic value references",
                )
                self._add(path, message, "warning")

    def _check_task_reference(self, path: str, text: str, upstream: str, task_key: str) -> None:
        """A task-values reference must name a task upstream of the referring task."""
        if upstream not in self.index:
            message = with_suggestion(
                f"{text} names {upstream!r}, which is not a task of job {self.job_key!r}",
                upstream,
                self.index,
                f"(tasks: {', '.join(self.index)})",
            )
            self._add(path, message)
        elif upstream == task_key:
            self._add(path, f"{text}: task {task_key!r} cannot read its own task values")
        elif task_key in self.index and upstream not in self._ancestors(task_key):
            message = (
                f"{text}: {upstream!r} is not upstream of task {task_key!r}, so its values may "
                f"not exist yet; add {upstream!r} to the depends_on of {task_key!r}"
            )
            self._add(path, message)

    def _check_job_parameter(self, path: str, text: str, name: str) -> None:
        """A job-parameter reference must name a parameter the job declares."""
        if name in self.parameters:
            return
        declared = [str(p) for p in self.parameters]
        fallback = (
            f"(parameters: {', '.join(declared)})"
            if declared
            else "the job declares no parameters; add it under `parameters:`"
        )
        message = with_suggestion(
            f"{text} names {name!r}, which is not a parameter of job {self.job_key!r}",
            name,
            declared,
            fallback,
        )
        self._add(path, message)


def check_jobs(bundle: Bundle) -> list[BundleIssue]:
    """Check every resolved job of a bundle (task graph, run_if, types, dynamic references)."""
    issues: list[BundleIssue] = []
    for job_key, job in bundle.jobs.items():
        if isinstance(job, dict):
            issues += _JobChecker(bundle, job_key, job).run()
    return issues


def check_deployment(bundle: Bundle) -> list[BundleIssue]:
    """Warn when a production target declares ``run_as`` but names no principal in it.

    That happens when the variable holding the principal is not set for the workspace; the
    workspace would refuse the deploy.
    """
    run_as = bundle.config.get("run_as")
    if bundle.mode != "production" or not isinstance(run_as, dict):
        return []
    if run_as.get("service_principal_name") or run_as.get("user_name"):
        return []
    return [bundle.issue(
        "run_as.service_principal_name",
        f"target {bundle.target!r} runs in production mode, but its jobs run as no principal: "
        "expected run_as.service_principal_name (var prod_service_principal: --var, or env "
        "BUNDLE_VAR_prod_service_principal), found none",
        "warning",
    )]
