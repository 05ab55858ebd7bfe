"""The upstream graph's picture: layered layout, SVG structure, PNG through resvg."""

from __future__ import annotations

import itertools
import struct
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from medallion.lakehouse.lineage.graph import (
    CompletedRun,
    LineageGraph,
    Node,
    build_graph,
    dataset_node,
    read_lineage,
)
from medallion.lakehouse.lineage.picture import (
    NODE_HEIGHT,
    PictureFormatUnsupported,
    layout,
    render_svg,
    svg_to_png,
    write_picture,
)
from medallion.lakehouse.lineage.steps import lakehouse_namespace
from medallion.lakehouse.storage import StorageRoot
from tests.lakehouse.lineage.scenario import (
    BEHAVIOR,
    ORDERS,
    RAW_BEHAVIOR,
    RAW_ORDERS,
    write_scenario,
)

SVG = "{http://www.w3.org/2000/svg}"
GOLD = "gold.fact_customer_360"
GOLD_KINDS = {  # label -> the node group's class
    BEHAVIOR: "node dataset external", ORDERS: "node dataset external",
    "ingest.redshift_behavior": "node job", "ingest.snowflake_orders": "node job",
    RAW_BEHAVIOR: "node dataset raw", RAW_ORDERS: "node dataset raw",
    "load_bronze.customer_behavior": "node job", "load_bronze.orders": "node job",
    "bronze.customer_behavior": "node dataset table", "bronze.orders": "node dataset table",
    "update_silver.customer_behavior": "node job", "update_silver.fact_orders": "node job",
    "silver.customer_behavior": "node dataset table", "silver.fact_orders": "node dataset table",
    "build_gold.fact_customer_360": "node job", GOLD: "node dataset table",
}


@pytest.fixture
def gold(tmp_path: Path) -> tuple[LineageGraph, Node]:
    """The scenario's upstream graph of gold.fact_customer_360, and that table."""
    write_scenario(tmp_path)
    graph, _ = read_lineage(StorageRoot(tmp_path))
    table = graph.find(GOLD)
    return graph.upstream(table), table


def nodes_of(svg: ET.Element) -> list[ET.Element]:
    (group,) = svg.findall(f"{SVG}g[@class='nodes']")
    return group.findall(f"{SVG}g")


def test_the_svg_has_a_group_with_one_rect_and_label_per_node(
    gold: tuple[LineageGraph, Node],
) -> None:
    graph, table = gold

    svg = ET.fromstring(render_svg(graph, table))

    drawn = {
        node.findtext(f"{SVG}text"): (
            node.get("class"), len(node.findall(f"{SVG}rect")), len(node.findall(f"{SVG}text"))
        )
        for node in nodes_of(svg)
    }
    assert len(nodes_of(svg)) == len(graph.nodes)
    assert drawn == {label: (kind, 1, 1) for label, kind in GOLD_KINDS.items()}


def test_the_svg_has_one_path_per_edge(gold: tuple[LineageGraph, Node]) -> None:
    graph, table = gold

    svg = ET.fromstring(render_svg(graph, table))

    (edges,) = svg.findall(f"{SVG}g[@class='edges']")
    assert sorted(path.findtext(f"{SVG}title") or "" for path in edges) == sorted(
        f"{graph.label(source)} → {graph.label(target)}" for source, target in graph.edges
    )
    assert [path.tag for path in edges] == [f"{SVG}path"] * len(graph.edges)
    assert len(svg.findall(f".//{SVG}path")) == len(graph.edges)


def test_only_the_table_asked_for_is_emphasised(gold: tuple[LineageGraph, Node]) -> None:
    graph, table = gold

    svg = ET.fromstring(render_svg(graph, table))

    thick = [
        node.findtext(f"{SVG}text") for node in nodes_of(svg)
        for rect in node.iter(f"{SVG}rect") if rect.get("stroke-width") == "2.5"
    ]
    assert thick == [GOLD]


def test_layers_are_longest_paths_from_the_sources(gold: tuple[LineageGraph, Node]) -> None:
    graph, _ = gold

    boxes = layout(graph)

    assert {graph.label(node): box.layer for node, box in boxes.items()} == {
        BEHAVIOR: 0, ORDERS: 0,
        "ingest.redshift_behavior": 1, "ingest.snowflake_orders": 1,
        RAW_BEHAVIOR: 2, RAW_ORDERS: 2,
        "load_bronze.customer_behavior": 3, "load_bronze.orders": 3,
        "bronze.customer_behavior": 4, "bronze.orders": 4,
        "update_silver.customer_behavior": 5, "update_silver.fact_orders": 5,
        "silver.customer_behavior": 6, "silver.fact_orders": 6,
        "build_gold.fact_customer_360": 7, GOLD: 8,
    }


def test_every_edge_runs_left_to_right_without_overlapping_boxes(
    gold: tuple[LineageGraph, Node],
) -> None:
    graph, _ = gold

    boxes = layout(graph)

    backwards = [
        (graph.label(source), graph.label(target)) for source, target in graph.edges
        if boxes[source].x + boxes[source].width >= boxes[target].x
    ]
    stacked = sorted((box.layer, box.y) for box in boxes.values())
    overlapping = [
        (upper, lower) for upper, lower in itertools.pairwise(stacked)
        if upper[0] == lower[0] and lower[1] - upper[1] < NODE_HEIGHT
    ]
    assert (backwards, overlapping) == ([], [])


def run(root: Path, job: str, sources: list[str], target: str) -> CompletedRun:
    tables = lakehouse_namespace(StorageRoot(root))
    return CompletedRun(
        job=Node("job", "medallion", job), event_time=datetime(2026, 11, 3, tzinfo=UTC),
        inputs=tuple(dataset_node(tables, source) for source in sources),
        outputs=(dataset_node(tables, target),), column_lineage={}, where="events.jsonl:1",
    )


def test_the_order_within_a_layer_follows_the_inputs(tmp_path: Path) -> None:
    # By label alone job "o" (reading b) would sit above job "p" (reading a): a crossing.
    graph = build_graph(
        [run(tmp_path, "p", ["a"], "out"), run(tmp_path, "o", ["b"], "out")], StorageRoot(tmp_path)
    )

    boxes = layout(graph)

    by_height = sorted(boxes, key=lambda node: (boxes[node].layer, boxes[node].y))
    assert [graph.label(node) for node in by_height] == ["a", "b", "p", "o", "out"]


def test_a_cycle_is_drawn_with_a_loop_back(tmp_path: Path) -> None:
    graph = build_graph(
        [run(tmp_path, "forward", ["x"], "y"), run(tmp_path, "back", ["y"], "x")],
        StorageRoot(tmp_path),
    )
    upstream = graph.upstream(graph.find("y"))

    svg = ET.fromstring(render_svg(upstream, graph.find("y")))

    assert sorted(node.findtext(f"{SVG}text") or "" for node in nodes_of(svg)) == [
        "back", "forward", "x", "y",
    ]
    assert len(svg.findall(f".//{SVG}path")) == 4


def png_size(png: bytes) -> tuple[bytes, int, int]:
    """The PNG signature and the IHDR chunk's width and height."""
    width, height = struct.unpack(">II", png[16:24])
    return png[:8], width, height


def test_png_is_the_svg_at_twice_its_size_with_its_labels(
    gold: tuple[LineageGraph, Node], tmp_path: Path,
) -> None:
    pytest.importorskip("resvg_py", reason="resvg-py is not installed (run `make setup`)")
    graph, table = gold
    picture = tmp_path / "gold.png"

    write_picture(graph, table, picture)

    svg = ET.fromstring(render_svg(graph, table))
    for node in nodes_of(svg):
        for text in node.findall(f"{SVG}text"):
            node.remove(text)
    unlabelled = svg_to_png(ET.tostring(svg, encoding="unicode"))
    png = picture.read_bytes()
    assert png_size(png) == (
        b"\x89PNG\r\n\x1a\n", 2 * int(svg.get("width") or 0), 2 * int(svg.get("height") or 0)
    )
    assert png != unlabelled  # the labels were drawn: a font was found


def test_png_without_resvg_says_to_write_svg(
    gold: tuple[LineageGraph, Node], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    graph, table = gold
    monkeypatch.setitem(sys.modules, "resvg_py", None)  # import resvg_py now fails

    with pytest.raises(PictureFormatUnsupported) as raised:
        write_picture(graph, table, tmp_path / "gold.png")

    assert str(raised.value) == (
        "writing .png needs the resvg-py package (pinned in pyproject.toml; run `make setup`); "
        "write .svg instead"
    )
    assert not (tmp_path / "gold.png").exists()
