"""When a gold build may bring its last build forward by silver's change feeds, and when not."""

from __future__ import annotations

import pytest

from medallion.lakehouse.pipelines.gold import BuiltFrom, whole_rebuild_reason
from medallion.lakehouse.tables import Commit

SOURCES = ("silver.fact_orders", "silver.fx_rates")
MERGE = {"predicate": "[]"}


def commits(*entries: tuple[int, str, dict[str, str]]) -> list[Commit]:
    """A history, newest first, from (version, operation, parameters)."""
    return [Commit(version, operation, parameters) for version, operation, parameters in entries]


def histories(orders: list[Commit], rates: list[Commit] | None = None) -> dict[str, list[Commit]]:
    return {"silver.fact_orders": orders,
            "silver.fx_rates": rates or commits((3, "MERGE", MERGE))}


BUILT = BuiltFrom(table_version=7, sources={"silver.fact_orders": 4, "silver.fx_rates": 3})


def test_merges_since_the_last_build_can_be_brought_forward() -> None:
    orders = commits((6, "MERGE", MERGE), (5, "SET TBLPROPERTIES", {}), (4, "MERGE", MERGE))

    assert whole_rebuild_reason(SOURCES, BUILT, 7, histories(orders)) is None


@pytest.mark.parametrize(
    ("built", "table_version", "orders", "reason"),
    [
        (None, 7, commits((4, "MERGE", MERGE)), "no record of its last build"),
        (BUILT, 8, commits((4, "MERGE", MERGE)),
         "written since its last build by something else"),
        (BUILT, 7, commits((5, "WRITE", {"mode": "Overwrite"}), (4, "MERGE", MERGE)),
         "silver.fact_orders was rewritten whole at version 5"),
        (BUILT, 7, commits((6, "RESTORE", {}), (5, "MERGE", MERGE), (4, "MERGE", MERGE)),
         "silver.fact_orders was rewritten whole at version 6"),
        (BUILT, 7, commits((1, "WRITE", {"mode": "Overwrite"})),
         "silver.fact_orders is older than the version last read (recreated)"),
        (BUILT, 7, commits((9, "MERGE", MERGE), (8, "MERGE", MERGE)),
         "silver.fact_orders has more than 100 commits since"),
        (BUILT, 7, [], "silver.fact_orders has more than 100 commits since"),
        (BuiltFrom(7, {"silver.fact_orders": 4}), 7, commits((4, "MERGE", MERGE)),
         "built from ['silver.fact_orders'], its sources are now "
         "['silver.fact_orders', 'silver.fx_rates']"),
    ],
    ids=["first-build", "table-written-by-another", "source-overwritten", "source-restored",
         "source-recreated", "history-beyond-limit", "history-all-after-the-read",
         "sources-changed"],
)
def test_a_whole_rebuild_is_needed_and_says_why(
    built: BuiltFrom | None, table_version: int, orders: list[Commit], reason: str
) -> None:
    assert whole_rebuild_reason(SOURCES, built, table_version, histories(orders)) == reason


def test_appends_and_merges_do_not_rewrite_a_table_but_overwrites_do() -> None:
    rewrites = {
        commit.operation + " " + commit.parameters.get("mode", ""): commit.rewrites_table
        for commit in commits(
            (1, "WRITE", {"mode": "Append"}),
            (2, "WRITE", {"mode": "Overwrite"}),
            (3, "MERGE", MERGE),
            (4, "DELETE", {}),
            (5, "CREATE OR REPLACE TABLE", {}),
            (6, "TRUNCATE", {}),
        )
    }

    assert rewrites == {
        "WRITE Append": False, "WRITE Overwrite": True, "MERGE ": False, "DELETE ": False,
        "CREATE OR REPLACE TABLE ": True, "TRUNCATE ": True,
    }
