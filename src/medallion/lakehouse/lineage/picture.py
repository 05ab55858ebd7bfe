"""The upstream graph as a picture: SVG from a small layered layout of our own, PNG from that.

Layout, left to right, sources first:

- **Layers** by longest path: a node with no input is in layer 0, any other one layer right of
  its furthest input. Edges that close a cycle (found by a depth-first search in label order)
  are left out of the layering and drawn as a loop under the nodes.
- **Order** within a layer: by label, then four sweeps that sort each layer by the mean
  position of its neighbours in the layers before (left to right) or after (right to left),
  which removes most crossings in a graph this size.
- **Shapes**: each node a rounded rectangle as wide as its label (monospace, so the width is
  known without a font); datasets with small corners, coloured by kind (table, raw load, external
  source), jobs pill-shaped; the table asked for drawn with a thick border. Each edge one cubic
  curve from the right side of its source to the left side of its target, with an arrowhead.

PNG is the same SVG rasterised by resvg (``resvg-py``, a self-contained wheel: no cairo, no
graphviz), at twice the SVG's size. It reads the machine's fonts, so the labels name DejaVu
Sans Mono first: resvg's own monospace default, Courier New, is rarely installed on Linux.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from medallion.lakehouse.errors import MedallionError
from medallion.lakehouse.lineage.graph import LineageGraph, Node
from medallion.lakehouse.lineage.steps import FILE_NAMESPACE, lakehouse_namespace

SVG_NS = "http://www.w3.org/2000/svg"
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
FONT_SIZE = 12
CHAR_WIDTH = 7.3  # DejaVu Sans Mono's advance at 12px, rounded up
PAD_X, NODE_HEIGHT, GAP_X, GAP_Y, MARGIN = 12, 28, 56, 14, 20
SWEEPS = 4
STYLES = {  # class -> fill, stroke, corner radius
    "table": ("#e3effb", "#1f5f9e", 4),
    "raw": ("#e8f3e1", "#44772e", 4),
    "external": ("#f1e8f8", "#6f3b96", 4),
    "job": ("#fff3d6", "#a86b12", NODE_HEIGHT / 2),
}
EDGE_COLOUR = "#666666"
PNG_ZOOM = 2


class PictureFormatUnsupported(MedallionError):
    """The picture cannot be written in the format its file name asks for."""


@dataclass(frozen=True)
class Box:
    """Where a node is drawn: top-left corner, size, layer."""

    x: float
    y: float
    width: float
    layer: int

    @property
    def middle(self) -> float:
        """The y of the node's horizontal centre line."""
        return self.y + NODE_HEIGHT / 2


def write_picture(graph: LineageGraph, target: Node, path: Path) -> None:
    """Write the graph to ``path``: ``.svg``, or ``.png`` rasterised from the same SVG."""
    suffix = path.suffix.lower()
    if suffix not in {".svg", ".png"}:
        raise PictureFormatUnsupported(
            f"{path}: expected a file name ending in .svg or .png, found {path.suffix or 'none'}"
        )
    svg = render_svg(graph, target)
    if suffix == ".svg":
        path.write_text(svg, encoding="utf-8")
    else:
        path.write_bytes(svg_to_png(svg))


def svg_to_png(svg: str) -> bytes:
    """The SVG rasterised at twice its size (sharp on high-density screens)."""
    try:
        import resvg_py
    except ImportError:
        raise PictureFormatUnsupported(
            "writing .png needs the resvg-py package (pinned in pyproject.toml; run "
            "`make setup`); write .svg instead"
        ) from None
    return bytes(resvg_py.svg_to_bytes(svg_string=svg, zoom=PNG_ZOOM))


def render_svg(graph: LineageGraph, target: Node | None = None) -> str:
    """The graph as an SVG document: one ``<g class="node …">`` per node, one path per edge;
    ``target``, if given, drawn with a thick border."""
    boxes = layout(graph)
    width = math.ceil(max(box.x + box.width for box in boxes.values()) + MARGIN)
    height = math.ceil(
        max(box.y for box in boxes.values()) + NODE_HEIGHT + MARGIN + _loop_room(graph, boxes)
    )
    svg = ET.Element("svg", {
        "xmlns": SVG_NS, "width": _n(width), "height": _n(height),
        "viewBox": f"0 0 {_n(width)} {_n(height)}",
        "font-family": FONT, "font-size": str(FONT_SIZE),
    })
    ET.SubElement(svg, "title").text = (
        "lineage" if target is None else f"upstream lineage of {graph.label(target)}"
    )
    marker = ET.SubElement(ET.SubElement(svg, "defs"), "marker", {
        "id": "arrow", "viewBox": "0 0 10 10", "refX": "10", "refY": "5",
        "markerWidth": "8", "markerHeight": "8", "orient": "auto-start-reverse",
    })
    ET.SubElement(marker, "polygon", {"points": "0,0 10,5 0,10", "fill": EDGE_COLOUR})
    edges = ET.SubElement(svg, "g", {"class": "edges", "fill": "none", "stroke": EDGE_COLOUR})
    for source, sink in sorted(graph.edges, key=lambda edge: _edge_key(graph, edge)):
        path = ET.SubElement(edges, "path", {
            "class": "edge", "d": _curve(boxes[source], boxes[sink]),
            "marker-end": "url(#arrow)",
        })
        ET.SubElement(path, "title").text = f"{graph.label(source)} → {graph.label(sink)}"
    nodes = ET.SubElement(svg, "g", {"class": "nodes"})
    by_place = sorted(boxes, key=lambda node: (boxes[node].layer, boxes[node].y))
    for index, node in enumerate(by_place):
        _draw_node(nodes, f"n{index}", graph, node, boxes[node], emphasised=node == target)
    ET.indent(svg)
    return ET.tostring(svg, encoding="unicode", xml_declaration=True) + "\n"


def node_class(graph: LineageGraph, node: Node) -> str:
    """``job``, or a dataset's kind: ``table``, ``raw`` (a load directory) or ``external``."""
    if node.kind == "job":
        return "job"
    if node.namespace == lakehouse_namespace(graph.storage_root):
        return "table"
    return "raw" if node.namespace == FILE_NAMESPACE else "external"


def _draw_node(
    parent: ET.Element, node_id: str, graph: LineageGraph, node: Node, box: Box, *,
    emphasised: bool,
) -> None:
    kind = node_class(graph, node)
    fill, stroke, radius = STYLES[kind]
    classes = "node job" if node.kind == "job" else f"node dataset {kind}"
    group = ET.SubElement(parent, "g", {"class": classes, "id": node_id})
    ET.SubElement(group, "title").text = f"{node.namespace} {node.name}"
    ET.SubElement(group, "rect", {
        "x": _n(box.x), "y": _n(box.y), "width": _n(box.width), "height": str(NODE_HEIGHT),
        "rx": _n(radius), "fill": fill, "stroke": stroke,
        "stroke-width": "2.5" if emphasised else "1.2",
    })
    text = ET.SubElement(group, "text", {
        "x": _n(box.x + box.width / 2), "y": _n(box.middle + FONT_SIZE * 0.35),
        "text-anchor": "middle", "fill": "#1a1a1a",
        **({"font-weight": "bold"} if emphasised else {}),
    })
    text.text = graph.label(node)


def layout(graph: LineageGraph) -> dict[Node, Box]:
    """Each node's box: layers left to right, nodes ordered within their layer top to bottom."""
    layers = _layers(graph)
    columns: defaultdict[int, list[Node]] = defaultdict(list)
    for node in sorted(graph.nodes, key=lambda node: (graph.label(node), node)):
        columns[layers[node]].append(node)
    _order(graph, columns)
    widths = {node: len(graph.label(node)) * CHAR_WIDTH + 2 * PAD_X for node in graph.nodes}
    tallest = max(len(column) for column in columns.values())
    full_height = tallest * NODE_HEIGHT + (tallest - 1) * GAP_Y
    boxes, x = {}, float(MARGIN)
    for layer in sorted(columns):
        column = columns[layer]
        column_width = max(widths[node] for node in column)
        height = len(column) * NODE_HEIGHT + (len(column) - 1) * GAP_Y
        y = MARGIN + (full_height - height) / 2
        for node in column:
            boxes[node] = Box(x + (column_width - widths[node]) / 2, y, widths[node], layer)
            y += NODE_HEIGHT + GAP_Y
        x += column_width + GAP_X
    return boxes


def _layers(graph: LineageGraph) -> dict[Node, int]:
    """Longest-path layers over the edges that close no cycle."""
    forward = _acyclic_edges(graph)
    inputs: defaultdict[Node, list[Node]] = defaultdict(list)
    for source, target in forward:
        inputs[target].append(source)
    layers: dict[Node, int] = {}

    def layer(node: Node) -> int:
        if node not in layers:  # the forward edges have no cycle: this recursion ends
            layers[node] = 1 + max((layer(source) for source in inputs[node]), default=-1)
        return layers[node]

    for node in graph.nodes:
        layer(node)
    return layers


def _acyclic_edges(graph: LineageGraph) -> set[tuple[Node, Node]]:
    """The edges, less those a depth-first search (in label order) finds closing a cycle."""
    children: defaultdict[Node, list[Node]] = defaultdict(list)
    for source, target in graph.edges:
        children[source].append(target)
    state: dict[Node, str] = {}
    backward: set[tuple[Node, Node]] = set()

    def visit(node: Node) -> None:
        state[node] = "open"
        for child in sorted(children[node], key=graph.label):
            if state.get(child) == "open":
                backward.add((node, child))
            elif child not in state:
                visit(child)
        state[node] = "done"

    for node in sorted(graph.nodes, key=graph.label):
        if node not in state:
            visit(node)
    return set(graph.edges) - backward


def _order(graph: LineageGraph, columns: dict[int, list[Node]]) -> None:
    """Barycentre sweeps: sort each layer by where its neighbours in the last one sit."""
    neighbours: defaultdict[Node, list[Node]] = defaultdict(list)
    for source, target in graph.edges:
        neighbours[source].append(target)
        neighbours[target].append(source)
    layer_of = {node: layer for layer, column in columns.items() for node in column}
    for sweep in range(SWEEPS):
        forward = sweep % 2 == 0  # left to right: look at the layers before; else after
        for layer in sorted(columns, reverse=not forward):
            position = {
                node: (index + 0.5) / len(column)
                for column in columns.values() for index, node in enumerate(column)
            }
            keys = {}
            for node in columns[layer]:
                placed = [
                    position[other] for other in neighbours[node]
                    if (layer_of[other] < layer if forward else layer_of[other] > layer)
                ]
                keys[node] = sum(placed) / len(placed) if placed else position[node]
            columns[layer].sort(key=keys.__getitem__)  # stable: ties keep their order


def _curve(source: Box, target: Box) -> str:
    x1, y1 = source.x + source.width, source.middle
    x2, y2 = target.x, target.middle
    if x2 > x1:
        bend = (x2 - x1) / 2
        return (f"M {_n(x1)} {_n(y1)} C {_n(x1 + bend)} {_n(y1)}, "
                f"{_n(x2 - bend)} {_n(y2)}, {_n(x2)} {_n(y2)}")
    # An edge closing a cycle runs right to left: loop it under both nodes.
    low = max(source.y, target.y) + NODE_HEIGHT + 2 * GAP_Y
    return (f"M {_n(x1)} {_n(y1)} C {_n(x1 + GAP_X)} {_n(low)}, "
            f"{_n(x2 - GAP_X)} {_n(low)}, {_n(x2)} {_n(y2)}")


def _loop_room(graph: LineageGraph, boxes: dict[Node, Box]) -> float:
    backward = any(boxes[target].x <= boxes[source].x for source, target in graph.edges)
    return 2 * GAP_Y if backward else 0


def _edge_key(graph: LineageGraph, edge: tuple[Node, Node]) -> tuple[str, str]:
    return graph.label(edge[0]), graph.label(edge[1])


def _n(value: float) -> str:
    """A coordinate with at most one decimal, no trailing zeros."""
    return f"{value:.1f}".rstrip("0").rstrip(".")
