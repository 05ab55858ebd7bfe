"""The upstream graph as text: a rich Tree (dataset → the job that wrote it → its inputs …).

A node reached a second time (two tables read the same lookup) is printed again with
``(see above)`` instead of its whole subtree; a node that is its own ancestor ends in ``(cycle)``.
"""

from __future__ import annotations

from datetime import UTC

from rich.markup import escape
from rich.tree import Tree

from medallion.lakehouse.lineage.graph import ColumnLineage, LineageGraph, Node

JOB_MARK = "⚙"


def upstream_tree(graph: LineageGraph, dataset: Node) -> Tree:
    """``dataset`` at the root; under each node, what it came from."""
    tree = Tree(_label(graph, dataset), guide_style="dim")
    expanded = {dataset}

    def grow(branch: Tree, node: Node, ancestors: frozenset[Node]) -> None:
        for parent in sorted(graph.parents(node), key=graph.label):
            if parent in ancestors:
                branch.add(f"{_label(graph, parent)} [dim](cycle)[/dim]")
            elif parent in expanded:
                branch.add(f"{_label(graph, parent)} [dim](see above)[/dim]")
            else:
                expanded.add(parent)
                grow(branch.add(_label(graph, parent)), parent, ancestors | {parent})

    grow(tree, dataset, frozenset({dataset}))
    return tree


def _label(graph: LineageGraph, node: Node) -> str:
    text = escape(graph.label(node))
    if node.kind == "dataset":
        return f"[bold]{text}[/bold]"
    run = graph.runs[node]
    finished = run.event_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"[cyan]{JOB_MARK} {text}[/cyan] [dim]completed {finished}[/dim]"


def column_lines(graph: LineageGraph, columns: ColumnLineage) -> list[str]:
    """``column ← dataset.field, …`` for each output column, in the facet's order."""
    return [
        f"{column} ← "
        + (", ".join(f"{graph.label(source.dataset)}.{source.field}" for source in sources)
           or "(no source column)")
        for column, sources in columns
    ]
