"""The lineage graph from the events files: latest COMPLETE runs, raw loads collapsed, upstream."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from medallion.lakehouse.lineage.graph import (
    CompletedRun,
    DatasetNotInLineage,
    LineageEventsUnreadable,
    LineageGraph,
    Node,
    NodeKind,
    SourceField,
    build_graph,
    dataset_node,
    latest_runs,
    read_event_files,
    read_lineage,
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

JOB: NodeKind = "job"
DATASET: NodeKind = "dataset"


def labelled(graph: LineageGraph) -> tuple[set[str], set[tuple[str, str]]]:
    """The graph's nodes and edges by label."""
    return (
        {graph.label(node) for node in graph.nodes},
        {(graph.label(source), graph.label(target)) for source, target in graph.edges},
    )


@pytest.fixture
def scenario(tmp_path: Path) -> tuple[LineageGraph, list[str]]:
    write_scenario(tmp_path)
    graph, skipped = read_lineage(StorageRoot(tmp_path))
    return graph, list(skipped)


def test_upstream_of_gold_goes_back_to_the_sources(
    scenario: tuple[LineageGraph, list[str]],
) -> None:
    graph, _ = scenario

    upstream = graph.upstream(graph.find("gold.fact_customer_360"))

    assert labelled(upstream) == (
        {
            "gold.fact_customer_360", "build_gold.fact_customer_360",
            "silver.customer_behavior", "update_silver.customer_behavior",
            "silver.fact_orders", "update_silver.fact_orders",
            "bronze.customer_behavior", "load_bronze.customer_behavior",
            "bronze.orders", "load_bronze.orders",
            RAW_BEHAVIOR, "ingest.redshift_behavior", BEHAVIOR,
            RAW_ORDERS, "ingest.snowflake_orders", ORDERS,
        },
        {
            ("silver.customer_behavior", "build_gold.fact_customer_360"),
            ("silver.fact_orders", "build_gold.fact_customer_360"),
            ("build_gold.fact_customer_360", "gold.fact_customer_360"),
            ("bronze.customer_behavior", "update_silver.customer_behavior"),
            ("bronze.orders", "update_silver.customer_behavior"),
            ("update_silver.customer_behavior", "silver.customer_behavior"),
            ("bronze.orders", "update_silver.fact_orders"),
            ("update_silver.fact_orders", "silver.fact_orders"),
            (RAW_BEHAVIOR, "load_bronze.customer_behavior"),
            ("load_bronze.customer_behavior", "bronze.customer_behavior"),
            (RAW_ORDERS, "load_bronze.orders"),
            ("load_bronze.orders", "bronze.orders"),
            (BEHAVIOR, "ingest.redshift_behavior"),
            ("ingest.redshift_behavior", RAW_BEHAVIOR),
            (ORDERS, "ingest.snowflake_orders"),
            ("ingest.snowflake_orders", RAW_ORDERS),
        },
    )


def test_the_whole_graph_has_each_jobs_latest_complete_run_only(
    scenario: tuple[LineageGraph, list[str]],
) -> None:
    graph, _ = scenario

    _, edges = labelled(graph)

    # Not there: bronze.orders_legacy (replaced by the re-run), silver.returns and gold.churn
    # (only in FAIL events), a node per raw load date.
    assert edges == {
        (BEHAVIOR, "ingest.redshift_behavior"), ("ingest.redshift_behavior", RAW_BEHAVIOR),
        (ORDERS, "ingest.snowflake_orders"), ("ingest.snowflake_orders", RAW_ORDERS),
        (RAW_BEHAVIOR, "load_bronze.customer_behavior"),
        ("load_bronze.customer_behavior", "bronze.customer_behavior"),
        ("load_bronze.customer_behavior", "bronze.customer_behavior_quarantine"),
        (RAW_ORDERS, "load_bronze.orders"), ("load_bronze.orders", "bronze.orders"),
        ("bronze.customer_behavior", "update_silver.customer_behavior"),
        ("bronze.orders", "update_silver.customer_behavior"),
        ("update_silver.customer_behavior", "silver.customer_behavior"),
        ("bronze.orders", "update_silver.fact_orders"),
        ("update_silver.fact_orders", "silver.fact_orders"),
        ("update_silver.fact_orders", "silver.fact_orders_quarantine"),
        ("silver.customer_behavior", "build_gold.fact_customer_360"),
        ("silver.fact_orders", "build_gold.fact_customer_360"),
        ("build_gold.fact_customer_360", "gold.fact_customer_360"),
        ("silver.fact_orders", "build_gold.daily_sales"),
        ("build_gold.daily_sales", "gold.daily_sales"),
    }


def test_the_truncated_last_line_is_skipped_and_reported(
    tmp_path: Path, scenario: tuple[LineageGraph, list[str]],
) -> None:
    _, skipped = scenario

    lines = (tmp_path / "_lineage" / "events.jsonl").read_text().splitlines()
    assert skipped == [f"{tmp_path / '_lineage' / 'events.jsonl'}:{len(lines)}"]


def test_a_malformed_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = write_scenario(tmp_path)
    lines = path.read_text().splitlines()
    lines[3] = lines[3][:40]
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(LineageEventsUnreadable) as raised:
        read_lineage(StorageRoot(tmp_path))

    assert str(raised.value) == (
        f"{path}:4: expected one OpenLineage event as JSON, found invalid JSON "
        "(Unterminated string starting at: column 15)"
    )


def test_a_truncated_line_that_ends_in_a_newline_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"eventType": "START"}\n{"eventType": \n')

    with pytest.raises(LineageEventsUnreadable, match=rf"^{path}:2: expected one OpenLineage"):
        read_event_files([path])


def test_a_complete_event_without_a_job_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"eventType": "COMPLETE", "eventTime": "2026-11-03T06:00:00+00:00", '
                    '"job": {"namespace": "medallion"}}\n')

    with pytest.raises(LineageEventsUnreadable) as raised:
        read_event_files([path])

    assert str(raised.value) == f"{path}:1: expected job.name to be a string, found None"


def test_an_unknown_dataset_lists_those_with_lineage(
    tmp_path: Path, scenario: tuple[LineageGraph, list[str]],
) -> None:
    graph, _ = scenario

    with pytest.raises(DatasetNotInLineage) as raised:
        graph.find("gold.churn")

    assert str(raised.value) == (
        f"no lineage for 'gold.churn' in {tmp_path / '_lineage'}: datasets with lineage: "
        "bronze.customer_behavior, bronze.customer_behavior_quarantine, bronze.orders, "
        "gold.daily_sales, gold.fact_customer_360, raw/redshift/behavior/load_dt=*, "
        "raw/snowflake/orders/load_dt=*, silver.customer_behavior, silver.fact_orders, "
        "silver.fact_orders_quarantine"
    )


def test_no_events_yet_says_so(tmp_path: Path) -> None:
    graph, _ = read_lineage(StorageRoot(tmp_path))

    with pytest.raises(DatasetNotInLineage) as raised:
        graph.find("gold.fact_customer_360")

    assert str(raised.value) == (
        f"no lineage for 'gold.fact_customer_360' in {tmp_path / '_lineage'}: "
        "no COMPLETE run event there yet (run a job first)"
    )


def test_column_lineage_comes_from_the_latest_complete_run(
    tmp_path: Path, scenario: tuple[LineageGraph, list[str]],
) -> None:
    graph, _ = scenario
    silver = lakehouse_namespace(StorageRoot(tmp_path))

    columns = graph.column_lineage(graph.find("gold.fact_customer_360"))

    fact_orders = dataset_node(silver, "silver.fact_orders")
    behavior = dataset_node(silver, "silver.customer_behavior")
    assert columns == (  # in the file's order: the client writes keys sorted
        ("customer_id", (SourceField(fact_orders, "customer_id"),)),
        ("events_30d", (SourceField(behavior, "event_id"), SourceField(behavior, "event_ts"))),
        ("lifetime_value", (SourceField(fact_orders, "order_amount"),)),
    )


def test_raw_load_directories_collapse_to_one_node_per_entity() -> None:
    assert [
        dataset_node("file", "/lake/raw/redshift/behavior/load_dt=2026-11-02"),
        dataset_node("file", "/lake/raw/fx_rates/load_dt=2026-11-03"),
        dataset_node("file", "/lake/raw/fx_rates/latest"),
        dataset_node("medallion:///lake", "silver.load_dt=2026-11-03"),
    ] == [
        Node(DATASET, "file", "/lake/raw/redshift/behavior/load_dt=*"),
        Node(DATASET, "file", "/lake/raw/fx_rates/load_dt=*"),
        Node(DATASET, "file", "/lake/raw/fx_rates/latest"),
        Node(DATASET, "medallion:///lake", "silver.load_dt=2026-11-03"),
    ]


def completed(job: str, at: str, line: int) -> CompletedRun:
    return CompletedRun(
        job=Node(JOB, "medallion", job), event_time=datetime.fromisoformat(at), inputs=(),
        outputs=(), column_lineage={}, where=f"events.jsonl:{line}",
    )


def test_the_latest_run_is_by_event_time_not_file_order() -> None:
    runs = [
        completed("a", "2026-11-03T06:30:00+00:00", 1),
        completed("a", "2026-11-03T08:00:00+02:00", 2),  # 06:00 UTC: older, though later
        completed("b", "2026-11-03T06:00:00+00:00", 3),
        completed("b", "2026-11-03T06:00:00+00:00", 4),  # a tie: the later line wins
    ]

    latest = latest_runs(runs)

    assert {job.name: run.where for job, run in latest.items()} == {
        "a": "events.jsonl:1", "b": "events.jsonl:4",
    }


def test_a_cycle_ends_where_it_closes(tmp_path: Path) -> None:
    def run(job: str, source: str, target: str) -> CompletedRun:
        table = lakehouse_namespace(StorageRoot(tmp_path))
        return CompletedRun(
            job=Node(JOB, "medallion", job),
            event_time=datetime(2026, 11, 3, tzinfo=UTC),
            inputs=(dataset_node(table, source),), outputs=(dataset_node(table, target),),
            column_lineage={}, where="events.jsonl:1",
        )

    graph = build_graph([run("forward", "x", "y"), run("back", "y", "x")], StorageRoot(tmp_path))

    assert labelled(graph.upstream(graph.find("y"))) == (
        {"x", "y", "forward", "back"},
        {("x", "forward"), ("forward", "y"), ("y", "back"), ("back", "x")},
    )
