"""`${...}` interpolation over a bundle tree, as the CLI resolves it before deploying.

`{{...}}` (double braces) are Jobs-service dynamic value references: left untouched here.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from medallion.lakehouse.issues import BundleIssue, with_suggestion
from medallion.lakehouse.yaml_positions import Node, child_path, from_plain, to_plain

# The CLI's reference grammar (libs/dyn/dynvar): dotted keys, optional [n] indexes.
_KEY = r"[a-zA-Z]+(?:[-_]?[a-zA-Z0-9]+)*"
REFERENCE = re.compile(rf"\$\{{({_KEY}(?:\.{_KEY}(?:\[[0-9]+\])*)*(?:\[[0-9]+\])*)\}}")
_PART = re.compile(r"([^.\[\]]+)|\[([0-9]+)\]")


def parse_reference(reference: str) -> list[str | int]:
    """Split `a.b[0].c` into `['a', 'b', 0, 'c']`."""
    return [int(index) if index else key for key, index in _PART.findall(reference)]


def _canonical(parts: list[str | int]) -> list[str | int]:
    """Rewrite the `var.x` shorthand to `variables.x.value`."""
    if len(parts) >= 2 and parts[0] == "var":
        return ["variables", parts[1], "value", *parts[2:]]
    return parts


def _path_of(parts: list[str | int]) -> str:
    """Join reference parts back into a YAML path."""
    path = ""
    for part in parts:
        path = child_path(path, part)
    return path


def _as_text(value: Any) -> str:
    """Render a scalar the way the CLI embeds it in a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class _UnresolvedError(Exception):
    """A reference could not be resolved (the issue is already recorded)."""


class Resolver:
    """Resolves every `${...}` in a config tree; a full-string reference keeps the value's type."""

    def __init__(self, tree: Node, issues: list[BundleIssue]) -> None:
        self.tree = tree
        self.issues = issues
        self.done: dict[str, Node] = {}
        self.failed: set[str] = set()
        self.active: list[str] = []
        self.following: list[tuple[str, str]] = []

    def resolve(self) -> Node:
        """Return a resolved copy of the whole tree."""
        children = {key: self._resolve_child(key, child) for key, child in self.tree.value.items()}
        return Node(children, self.tree.file, self.tree.line, self.tree.path)

    def _resolve_at(self, path: str, node: Node) -> Node:
        """Resolve the node at tree path `path` (memoised; cycles raise `_UnresolvedError`)."""
        if path in self.done:
            return self.done[path]
        if path in self.failed:
            raise _UnresolvedError
        self.active.append(path)
        try:
            if isinstance(node.value, dict):
                result = Node(
                    {
                        key: self._resolve_child(child_path(path, key), child)
                        for key, child in node.value.items()
                    },
                    node.file,
                    node.line,
                    node.path,
                )
            elif isinstance(node.value, list):
                items = [
                    self._resolve_child(child_path(path, i), item)
                    for i, item in enumerate(node.value)
                ]
                result = Node(items, node.file, node.line, node.path)
            elif isinstance(node.value, str):
                result = self._resolve_string(path, node)
            else:
                result = node
        finally:
            self.active.pop()
        self.done[path] = result
        return result

    def _resolve_child(self, path: str, node: Node) -> Node:
        """Resolve a child; a child that cannot be resolved keeps its raw text."""
        try:
            return self._resolve_at(path, node)
        except _UnresolvedError:
            self.failed.add(path)
            return node

    def _resolve_string(self, path: str, node: Node) -> Node:
        """Substitute the references in one string value."""
        text: str = node.value
        matches = list(REFERENCE.finditer(text))
        if not matches:
            if "${" in text:
                message = (
                    f"{text!r} contains '${{' but no valid reference; references look like "
                    "${var.name} or ${bundle.target}"
                )
                self.issues.append(BundleIssue(node.file, node.line, node.path, message, "warning"))
            return node
        if len(matches) == 1 and matches[0].group(0) == text:
            target = self._follow(matches[0].group(1), node)
            return from_plain(to_plain(target), node, node.path)
        pieces: list[str] = []
        end = 0
        unresolved = False
        for match in matches:
            try:
                value = to_plain(self._follow(match.group(1), node))
            except _UnresolvedError:
                unresolved = True  # keep going: report every bad reference of the string
                continue
            if isinstance(value, dict | list):
                message = (
                    f"${{{match.group(1)}}} is a {type(value).__name__} and cannot be embedded "
                    "in a string; use the reference as the whole value"
                )
                self.issues.append(BundleIssue(node.file, node.line, node.path, message))
                unresolved = True
            pieces += [text[end : match.start()], _as_text(value)]
            end = match.end()
        if unresolved:
            raise _UnresolvedError
        pieces.append(text[end:])
        return Node("".join(pieces), node.file, node.line, node.path)

    def _follow(self, reference: str, at: Node) -> Node:
        """Return the resolved node a reference points at, or record why it cannot be."""
        parts = _canonical(parse_reference(reference))
        if parts[:1] == ["resources"] and len(parts) == 4 and parts[3] == "id":
            return self._resource_id(reference, parts, at)
        node = self.tree
        walked: list[str | int] = []
        for part in parts:
            child = self._child(node, part)
            if child is None and isinstance(node.value, str) and REFERENCE.search(node.value):
                # Why: a complex variable may itself be a reference to another complex value.
                node = self._resolve_at(_path_of(walked), node)
                child = self._child(node, part)
            if child is None:
                self._unknown(reference, walked, part, node, at)
            node = child
            walked.append(part)
        target_path = _path_of(parts)
        if target_path in self.active:
            self._cycle(reference, target_path, at)
        self.following.append((reference, target_path))
        try:
            return self._resolve_at(target_path, node)
        finally:
            self.following.pop()

    @staticmethod
    def _child(node: Node, part: str | int) -> Node | None:
        """Step from a node to its key or index `part`."""
        if isinstance(part, str) and isinstance(node.value, dict):
            child: Node | None = node.value.get(part)
            return child
        if isinstance(part, int) and isinstance(node.value, list) and part < len(node.value):
            item: Node = node.value[part]
            return item
        return None

    def _resource_id(self, reference: str, parts: list[str | int], at: Node) -> Node:
        """Resolve `${resources.<kind>.<key>.id}` to the key (as if deployed under that name)."""
        kind, key = parts[1], parts[2]
        resources = self.tree.get("resources")
        group = resources.get(str(kind)) if resources is not None else None
        if group is None or not isinstance(group.value, dict) or key not in group.value:
            known = list(group.value) if group is not None and isinstance(group.value, dict) else []
            noun = str(kind).removesuffix("s")
            message = with_suggestion(
                f"unknown reference ${{{reference}}}: no {noun} {key!r} in this bundle",
                str(key),
                known,
                f"({kind}: {', '.join(known) or 'none'})",
            )
            self.issues.append(BundleIssue(at.file, at.line, at.path, message))
            raise _UnresolvedError
        return Node(key, at.file, at.line, at.path)

    def _unknown(
        self, reference: str, walked: list[str | int], part: str | int, parent: Node, at: Node
    ) -> NoReturn:
        """Record an unknown reference (with a did-you-mean) and stop resolving it."""
        keys = list(parent.value) if isinstance(parent.value, dict) else []
        if len(walked) == 2 and walked[0] == "variables" and part == "value":
            raise _UnresolvedError  # the variable has no value: the loader already said so
        if walked == ["variables"]:
            message = with_suggestion(
                f"unknown reference ${{{reference}}}: variable {part!r} is not declared",
                str(part),
                keys,
                "declare it under the top-level `variables:` mapping",
            )
        elif not walked:
            message = with_suggestion(
                f"unknown reference ${{{reference}}}: no top-level {part!r} in this bundle",
                str(part),
                ["var", "bundle", "workspace", "resources", "variables"],
                "references start with var., bundle., workspace. or resources.",
            )
        else:
            where = _path_of(walked)
            message = with_suggestion(
                f"unknown reference ${{{reference}}}: {where!r} has no {part!r}",
                str(part),
                keys,
                f"(it has: {', '.join(keys) or 'nothing'})",
            )
        self.issues.append(BundleIssue(at.file, at.line, at.path, message))
        raise _UnresolvedError

    def _cycle(self, reference: str, target_path: str, at: Node) -> NoReturn:
        """Record a reference cycle such as var.a -> var.b -> var.a."""
        chain = [ref for ref, _ in self.following]
        starts = [i for i, (_, path) in enumerate(self.following) if path == target_path]
        if starts:
            chain = chain[starts[0] :]
        rendered = " -> ".join(f"${{{ref}}}" for ref in [*chain, reference])
        message = f"reference cycle: {rendered}; break the cycle by giving one of them a value"
        self.issues.append(BundleIssue(at.file, at.line, at.path, message))
        self.failed.add(target_path)
        raise _UnresolvedError
