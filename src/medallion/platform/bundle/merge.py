"""Merging bundle trees the way the Databricks CLI does (files, then the selected target)."""

from __future__ import annotations

from medallion.lakehouse.issues import BundleIssue
from medallion.lakehouse.yaml_positions import Node, job_nodes

# Lists of a job whose items are identified by a key: the CLI merges items with equal keys
# (mutators MergeJobTasks, MergeJobClusters, MergeJobParameters, MergeJobEnvironments).
KEYED_JOB_LISTS: dict[str, str] = {
    "tasks": "task_key",
    "job_clusters": "job_cluster_key",
    "parameters": "name",
    "environments": "environment_key",
}


def _kind(node: Node) -> str:
    """Name the YAML kind of a node for messages."""
    if isinstance(node.value, dict):
        return "mapping"
    if isinstance(node.value, list):
        return "list"
    return "value"


def copy_tree(node: Node) -> Node:
    """Return a deep copy of a node tree (merges of one target must not leak into another)."""
    if isinstance(node.value, dict):
        children = {key: copy_tree(child) for key, child in node.value.items()}
        return Node(children, node.file, node.line, node.path)
    if isinstance(node.value, list):
        return Node([copy_tree(item) for item in node.value], node.file, node.line, node.path)
    return Node(node.value, node.file, node.line, node.path)


def merge(base: Node | None, overlay: Node | None, issues: list[BundleIssue]) -> Node | None:
    """Merge `overlay` into `base`: mappings merge, lists concatenate, scalars are replaced.

    These are the CLI's semantics (libs/dyn/merge): a null on either side yields the other side,
    and lists are concatenated; keyed job lists are then merged by `merge_keyed_job_lists`.
    """
    if base is None or base.value is None:
        return overlay
    if overlay is None or overlay.value is None:
        return base
    if isinstance(base.value, dict) and isinstance(overlay.value, dict):
        children = dict(base.value)
        for key, child in overlay.value.items():
            merged = merge(children[key], child, issues) if key in children else child
            if merged is not None:
                children[key] = merged
        return Node(children, base.file, base.line, base.path)
    if isinstance(base.value, list) and isinstance(overlay.value, list):
        return Node([*base.value, *overlay.value], base.file, base.line, base.path)
    if _kind(base) != _kind(overlay):
        message = (
            f"cannot merge a {_kind(overlay)} into the {_kind(base)} declared at "
            f"{base.file}:{base.line} ({base.path}); use the same kind in both places"
        )
        issues.append(BundleIssue(overlay.file, overlay.line, overlay.path, message))
        return base
    return overlay


def merge_by_key(items: Node, key: str, issues: list[BundleIssue]) -> Node:
    """Merge list items that share the same `key` value, keeping first-declaration order."""
    if not isinstance(items.value, list):
        return items
    merged: list[Node] = []
    index_of: dict[str, int] = {}
    for item in items.value:
        key_node = item.get(key)
        item_key = key_node.value if key_node is not None else None
        if not isinstance(item_key, str) or item_key not in index_of:
            if isinstance(item_key, str):
                index_of[item_key] = len(merged)
            merged.append(item)
            continue
        position = index_of[item_key]
        combined = merge(merged[position], item, issues)
        merged[position] = combined if combined is not None else merged[position]
    return Node(merged, items.file, items.line, items.path)


def merge_keyed_job_lists(config: Node, issues: list[BundleIssue]) -> None:
    """Merge, in place, the items of each job's keyed lists (tasks by task_key, ...)."""
    for job in job_nodes(config):
        for field, key in KEYED_JOB_LISTS.items():
            if field in job.value:
                job.value[field] = merge_by_key(job.value[field], key, issues)
