"""YAML parsing that keeps, for every value, the file, line and YAML path it was written at."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medallion.lakehouse.issues import BundleIssue

_SIMPLE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_DROPPED_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}


# libyaml's parser when PyYAML was built with it: parsing is most of a validation's time.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Yaml12Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader with YAML 1.2 booleans and no timestamps, like the Go parser of the CLI."""


# Why: YAML 1.1 reads `on`/`no` as booleans and `2024-01-01` as a date; the CLI reads strings.
Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_12, list("tTfF"))


@dataclass(eq=False, slots=True)
class Node:
    """A YAML value (`dict[str, Node]`, `list[Node]` or a scalar) and where it was written."""

    value: Any
    file: str
    line: int
    path: str

    def get(self, key: str) -> Node | None:
        """Return the child node under `key` when this node is a mapping that has it."""
        if isinstance(self.value, dict):
            child: Node | None = self.value.get(key)
            return child
        return None


def child_path(path: str, key: str | int) -> str:
    """Return the YAML path of `key` (a mapping key or a list index) under `path`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not _SIMPLE_KEY.match(key):
        return f"{path}[{json.dumps(key)}]"
    return f"{path}.{key}" if path else key


def to_plain(node: Node | None) -> Any:
    """Return the plain Python value (dicts, lists, scalars) of a node tree."""
    if node is None:
        return None
    if isinstance(node.value, dict):
        return {key: to_plain(child) for key, child in node.value.items()}
    if isinstance(node.value, list):
        return [to_plain(item) for item in node.value]
    return node.value


def from_plain(value: Any, at: Node, path: str) -> Node:
    """Wrap a plain value into nodes that all point at `at` (used for interpolated values)."""
    if isinstance(value, dict):
        children = {
            str(key): from_plain(item, at, child_path(path, str(key)))
            for key, item in value.items()
        }
        return Node(children, at.file, at.line, path)
    if isinstance(value, list):
        items = [from_plain(item, at, child_path(path, i)) for i, item in enumerate(value)]
        return Node(items, at.file, at.line, path)
    return Node(value, at.file, at.line, path)


def iter_nodes(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    """Yield `(path in this tree, node)` for the node and every node below it."""
    yield path, node
    if isinstance(node.value, dict):
        for key, child in node.value.items():
            yield from iter_nodes(child, child_path(path, key))
    elif isinstance(node.value, list):
        for index, item in enumerate(node.value):
            yield from iter_nodes(item, child_path(path, index))


def node_at(node: Node, parts: Sequence[str | int]) -> Node:
    """Return the deepest node reachable along `parts` (keys and indexes) from `node`."""
    current = node
    for part in parts:
        value = current.value
        in_mapping = isinstance(value, dict) and isinstance(part, str) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        if not (in_mapping or in_list):
            break
        current = value[part]
    return current


class _TreeBuilder:
    """Turns a composed PyYAML node graph into a `Node` tree, noting duplicate keys."""

    def __init__(self, loader: Yaml12Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.issues: list[BundleIssue] = []

    def build(self, ynode: yaml.Node, path: str, line: int) -> Node:
        """Build the node tree under `ynode`, declared at `line`."""
        if isinstance(ynode, yaml.MappingNode):
            self.loader.flatten_mapping(ynode)  # resolves `<<: *anchor` merge keys
            children: dict[str, Node] = {}
            for key_node, value_node in ynode.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    self._issue(key_line, path, "a mapping key must be a plain scalar")
                    continue
                key = str(key_node.value)
                if key in children:
                    self._issue(
                        key_line,
                        child_path(path, key),
                        f"duplicate key {key!r} (first at line {children[key].line}); "
                        "keep only one",
                    )
                children[key] = self.build(value_node, child_path(path, key), key_line)
            return Node(children, self.file, line, path)
        if isinstance(ynode, yaml.SequenceNode):
            items = [
                self.build(item, child_path(path, i), item.start_mark.line + 1)
                for i, item in enumerate(ynode.value)
            ]
            return Node(items, self.file, line, path)
        return Node(self.loader.construct_object(ynode, deep=True), self.file, line, path)

    def _issue(self, line: int, path: str, message: str) -> None:
        self.issues.append(BundleIssue(self.file, line, path, message))


def load_yaml_file(path: Path, root: Path) -> tuple[Node | None, list[BundleIssue]]:
    """Parse one bundle file into a `Node` tree; syntax problems come back as issues."""
    rel = relative_name(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [BundleIssue(rel, 0, "", f"cannot read the file: {exc.strerror}")]
    loader = Yaml12Loader(text)
    try:
        document = loader.get_single_node()
        if document is None:
            return Node({}, rel, 1, ""), []
        builder = _TreeBuilder(loader, rel)
        tree = builder.build(document, "", 1)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
        return None, [BundleIssue(rel, line, "", f"not valid YAML: {detail}; fix the syntax")]
    except yaml.YAMLError as exc:
        return None, [BundleIssue(rel, 0, "", f"not valid YAML: {exc}; fix the syntax")]
    finally:
        loader.dispose()
    if not isinstance(tree.value, dict):
        found = type(tree.value).__name__
        message = f"a bundle file must be a YAML mapping, found {found}; start with `bundle:`"
        return None, [*builder.issues, BundleIssue(rel, 1, "", message)]
    return tree, builder.issues


def relative_name(path: Path, root: Path) -> str:
    """Return `path` relative to the bundle root, POSIX style (absolute when outside the root)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def job_nodes(config: Node) -> list[Node]:
    """The mapping node of every job under ``resources.jobs`` (none when absent or malformed)."""
    resources = config.get("resources")
    jobs = resources.get("jobs") if resources is not None else None
    if jobs is None or not isinstance(jobs.value, dict):
        return []
    return [job for job in jobs.value.values() if isinstance(job.value, dict)]
