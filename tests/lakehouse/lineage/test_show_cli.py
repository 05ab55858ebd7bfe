"""``medallion lineage show``: the upstream tree, column lineage, pictures, unknown tables."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from medallion.platform import cli
from tests.lakehouse.lineage.scenario import write_scenario

GOLD_TREE = """\
gold.fact_customer_360
└── ⚙ build_gold.fact_customer_360 completed 2026-11-03 06:19:00 UTC
    ├── silver.customer_behavior
    │   └── ⚙ update_silver.customer_behavior completed 2026-11-03 06:15:00 UTC
    │       ├── bronze.customer_behavior
    │       │   └── ⚙ load_bronze.customer_behavior completed 2026-11-03 06:09:00 UTC
    │       │       └── raw/redshift/behavior/load_dt=*
    │       │           └── ⚙ ingest.redshift_behavior completed 2026-11-03 06:03:00 UTC
    │       │               └── redshift://devstack/analytics.behavior
    │       └── bronze.orders
    │           └── ⚙ load_bronze.orders completed 2026-11-03 06:11:00 UTC
    │               └── raw/snowflake/orders/load_dt=*
    │                   └── ⚙ ingest.snowflake_orders completed 2026-11-03 06:05:00 UTC
    │                       └── snowflake://devstack/ORDERS
    └── silver.fact_orders
        └── ⚙ update_silver.fact_orders completed 2026-11-03 06:17:00 UTC
            └── bronze.orders (see above)
"""


@pytest.fixture(autouse=True)
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 60-column terminal: narrower than the tree, which must print whole all the same."""
    monkeypatch.setattr(cli.console, "_width", 60)
    monkeypatch.setattr(cli.err, "_width", 60)


def show(root: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli.app, ["lineage", "show", *args, "--storage-root", str(root)]
    )


def test_show_prints_the_upstream_tree(tmp_path: Path) -> None:
    write_scenario(tmp_path)

    result = show(tmp_path, "gold.fact_customer_360")

    assert (result.exit_code, result.stdout) == (0, GOLD_TREE)


def test_show_notes_the_skipped_last_line_on_stderr(tmp_path: Path) -> None:
    path = write_scenario(tmp_path)

    result = show(tmp_path, "gold.fact_customer_360")

    lines = len(path.read_text().splitlines())
    assert result.stderr == f"note: skipped {path}:{lines}, a last line not yet complete\n"


def test_show_columns_adds_the_latest_column_lineage(tmp_path: Path) -> None:
    write_scenario(tmp_path)

    result = show(tmp_path, "gold.fact_customer_360", "--columns")

    assert (result.exit_code, result.stdout) == (0, GOLD_TREE + (
        "\n"
        "column lineage of gold.fact_customer_360:\n"
        "  customer_id ← silver.fact_orders.customer_id\n"
        "  events_30d ← silver.customer_behavior.event_id, silver.customer_behavior.event_ts\n"
        "  lifetime_value ← silver.fact_orders.order_amount\n"
    ))


def test_show_columns_of_a_table_without_the_facet_says_so(tmp_path: Path) -> None:
    write_scenario(tmp_path)

    result = show(tmp_path, "bronze.orders", "--columns")

    assert (result.exit_code, result.stdout) == (0, (
        "bronze.orders\n"
        "└── ⚙ load_bronze.orders completed 2026-11-03 06:11:00 UTC\n"
        "    └── raw/snowflake/orders/load_dt=*\n"
        "        └── ⚙ ingest.snowflake_orders completed 2026-11-03 06:05:00 UTC\n"
        "            └── snowflake://devstack/ORDERS\n"
        "\n"
        "no column lineage recorded for bronze.orders\n"
    ))


def test_show_an_unknown_table_fails_listing_the_tables_with_lineage(tmp_path: Path) -> None:
    write_scenario(tmp_path)

    result = show(tmp_path, "gold.churn")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"error: no lineage for 'gold.churn' in {tmp_path / '_lineage'}: datasets with lineage: "
        "bronze.customer_behavior, bronze.customer_behavior_quarantine, bronze.orders, "
        "gold.daily_sales, gold.fact_customer_360, raw/redshift/behavior/load_dt=*, "
        "raw/snowflake/orders/load_dt=*, silver.customer_behavior, silver.fact_orders, "
        "silver.fact_orders_quarantine"
    )


def test_show_output_svg_writes_the_picture(tmp_path: Path) -> None:
    write_scenario(tmp_path)
    picture = tmp_path / "gold.svg"

    result = show(tmp_path, "bronze.orders", "--output", str(picture))

    labels = [
        text.text for text in ET.parse(picture).iter("{http://www.w3.org/2000/svg}text")
    ]
    assert (result.exit_code, result.stdout.splitlines()[-1]) == (0, f"wrote {picture}")
    assert labels == [
        "snowflake://devstack/ORDERS", "ingest.snowflake_orders",
        "raw/snowflake/orders/load_dt=*", "load_bronze.orders", "bronze.orders",
    ]


def test_show_output_of_another_format_fails_before_printing(tmp_path: Path) -> None:
    write_scenario(tmp_path)

    result = show(tmp_path, "gold.fact_customer_360", "--output", str(tmp_path / "gold.pdf"))

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == (
        f"error: {tmp_path / 'gold.pdf'}: expected a file name ending in .svg or .png, "
        "found .pdf"
    )
