"""Lakehouse.merge: upserts that are idempotent, sequence-aware and CDC-friendly."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse import tables
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse, sql_literal

SCHEMA = "order_id string, status string, updated_at timestamp, _rank int, _ingest_ts timestamp"
T0, T1, T2 = datetime(2026, 1, 1, 9), datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 11)
INGEST_A, INGEST_B = datetime(2026, 1, 2), datetime(2026, 1, 3)


@pytest.fixture
def lakehouse(spark: SparkSession, tmp_path: Path) -> Lakehouse:
    return Lakehouse.open(spark, StorageRoot(tmp_path))


def seed(lakehouse: Lakehouse, table: str) -> None:
    current = local_frame(
        lakehouse.spark,
        [("o1", "shipped", T1, 1, INGEST_A), ("o2", "placed", T1, 0, INGEST_A)], SCHEMA
    )
    lakehouse.write(current, table)


def merge(
    lakehouse: Lakehouse, table: str, rows: list[tuple[object, ...]], **options: object
) -> None:
    updates = local_frame(lakehouse.spark, rows, SCHEMA)
    lakehouse.merge(updates, table, keys=["order_id"], **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("broadcast", [False, True], ids=["shuffled", "updates-broadcast"])
def test_an_older_version_never_replaces_a_newer_one(lakehouse: Lakehouse, broadcast: bool) -> None:
    table = f"silver.merge_older_{'broadcast' if broadcast else 'shuffled'}"
    seed(lakehouse, table)
    merge(
        lakehouse,
        table,
        [("o1", "placed", T0, 1, INGEST_B), ("o2", "delivered", T2, 0, INGEST_B),
         ("o3", "placed", T2, 0, INGEST_B)],
        sequence_by=["updated_at", "_rank"],
        broadcast=broadcast,
    )
    expected = local_frame(
        lakehouse.spark,
        [("o1", "shipped", T1, 1, INGEST_A), ("o2", "delivered", T2, 0, INGEST_B),
         ("o3", "placed", T2, 0, INGEST_B)], SCHEMA
    )
    assertDataFrameEqual(lakehouse.read(table), expected)


def test_a_tie_on_the_first_sequence_column_goes_to_the_higher_second(lakehouse: Lakehouse) -> None:
    seed(lakehouse, "silver.merge_tie")
    merge(
        lakehouse,
        "silver.merge_tie",
        [("o1", "placed", T1, 0, INGEST_B), ("o2", "cancelled", T1, 1, INGEST_B)],
        sequence_by=["updated_at", "_rank"],
    )
    expected = local_frame(
        lakehouse.spark,
        [("o1", "shipped", T1, 1, INGEST_A), ("o2", "cancelled", T1, 1, INGEST_B)], SCHEMA
    )
    assertDataFrameEqual(lakehouse.read("silver.merge_tie"), expected)


def test_missing_fields_keep_their_current_value(lakehouse: Lakehouse) -> None:
    seed(lakehouse, "silver.merge_keep")
    merge(
        lakehouse,
        "silver.merge_keep",
        [("o1", None, T2, 0, INGEST_B), ("o3", None, T2, 0, INGEST_B)],
        sequence_by=["updated_at"],
        keep_current_when_null=["status"],
    )
    expected = local_frame(
        lakehouse.spark,
        [
            ("o1", "shipped", T2, 0, INGEST_B),
            ("o2", "placed", T1, 0, INGEST_A),
            ("o3", None, T2, 0, INGEST_B),
        ],
        SCHEMA,
    )
    assertDataFrameEqual(lakehouse.read("silver.merge_keep"), expected)


def test_a_record_landed_again_does_not_rewrite_the_table(lakehouse: Lakehouse) -> None:
    seed(lakehouse, "silver.merge_same")
    version = lakehouse.spark.sql(
        f"DESCRIBE HISTORY delta.`{lakehouse.path('silver.merge_same')}`"
    ).count()
    merge(
        lakehouse,
        "silver.merge_same",
        [("o1", "shipped", T1, 1, INGEST_B)],
        sequence_by=["updated_at", "_rank"],
        compare_columns=["status", "updated_at"],
    )
    history = lakehouse.spark.sql(
        f"DESCRIBE HISTORY delta.`{lakehouse.path('silver.merge_same')}`"
    ).orderBy("version", ascending=False).first()
    assert history is not None
    assert history["version"] == version  # the MERGE committed, changing nothing
    assert history["operationMetrics"]["numTargetRowsUpdated"] == "0"
    assert history["operationMetrics"]["numTargetRowsInserted"] == "0"
    expected = local_frame(
        lakehouse.spark,
        [("o1", "shipped", T1, 1, INGEST_A), ("o2", "placed", T1, 0, INGEST_A)], SCHEMA
    )
    assertDataFrameEqual(lakehouse.read("silver.merge_same"), expected)


def test_held_keys_merge_without_an_insert_clause_and_the_rest_in_the_full_merge(
    lakehouse: Lakehouse,
) -> None:
    """o1 is held (the caller found it): updated by a MERGE that cannot insert. o2 is in the
    table though not held (a concurrent writer's key), o3 new: both go to the full MERGE."""
    table = "silver.merge_held"
    seed(lakehouse, table)
    before = lakehouse.history(table, limit=1)[0].version
    held = local_frame(lakehouse.spark, [("o1",)], "order_id string")

    merge(
        lakehouse,
        table,
        [("o1", "delivered", T2, 0, INGEST_B), ("o2", "cancelled", T2, 0, INGEST_B),
         ("o3", "placed", T2, 0, INGEST_B)],
        sequence_by=["updated_at", "_rank"],
        held=held,
    )

    assertDataFrameEqual(lakehouse.read(table), local_frame(lakehouse.spark, [
        ("o1", "delivered", T2, 0, INGEST_B), ("o2", "cancelled", T2, 0, INGEST_B),
        ("o3", "placed", T2, 0, INGEST_B)], SCHEMA))
    commits = lakehouse.spark.sql(
        f"DESCRIBE HISTORY delta.`{lakehouse.path(table)}`"
    ).where(f"version > {before}").orderBy("version").collect()
    assert [(row["operation"], row["operationParameters"]["notMatchedPredicates"] != "[]",
             int(row["operationMetrics"]["numTargetRowsUpdated"]),
             int(row["operationMetrics"]["numTargetRowsInserted"])) for row in commits] == [
        ("MERGE", False, 1, 0), ("MERGE", True, 1, 1)]


def test_replacing_keys_updates_inserts_and_deletes_only_those_keys(
    lakehouse: Lakehouse,
) -> None:
    """Keys (day, currency) with a NULL currency: d1/EUR changes, d1/NULL is unchanged, d2/USD
    is new, d1/GBP is replaced by nothing (deleted); d3/EUR is not a replaced key and stays."""
    spark, table = lakehouse.spark, "gold.replace_keys"
    schema = "day string, currency string, n int"
    lakehouse.write(local_frame(
        spark,
        [("d1", "EUR", 1), ("d1", None, 2), ("d1", "GBP", 3), ("d3", "EUR", 4)], schema), table)
    before = lakehouse.history(table, limit=1)[0].version
    replaced = local_frame(
        spark,
        [("d1", "EUR"), ("d1", None), ("d1", "GBP"), ("d2", "USD")], "day string, currency string")
    rows = local_frame(spark, [("d1", "EUR", 10), ("d1", None, 2), ("d2", "USD", 5)], schema)

    lakehouse.replace_keys(rows, table, keys=["day", "currency"], replaced=replaced)

    assertDataFrameEqual(lakehouse.read(table), local_frame(
        spark,
        [("d1", "EUR", 10), ("d1", None, 2), ("d2", "USD", 5), ("d3", "EUR", 4)], schema))
    last = lakehouse.spark.sql(f"DESCRIBE HISTORY delta.`{lakehouse.path(table)}` LIMIT 1").first()
    assert last is not None
    metrics = last["operationMetrics"]
    assert lakehouse.history(table, limit=1)[0].version == before + 1
    assert {name: int(metrics[name]) for name in (
        "numTargetRowsUpdated", "numTargetRowsInserted", "numTargetRowsDeleted")} == {
        "numTargetRowsUpdated": 1, "numTargetRowsInserted": 1, "numTargetRowsDeleted": 1}


DELETE_SCHEMA = "id string, day date, at timestamp, n bigint, note string"
D1, D2 = date(2026, 11, 2), date(2026, 11, 3)
AWKWARD = "it's a \\'quoted\\' back\\slash"  # quote, backslash and an escaped-looking quote


def delete_seed(lakehouse: Lakehouse, table: str) -> None:
    lakehouse.write(local_frame(lakehouse.spark, [
        ("a", D1, T0, 1, "x"),
        (None, D1, T1, 2, "null id"),
        (AWKWARD, D1, T2, 3, "awkward"),
        ("a", D2, T0, 1, "other day"),
        ("b", D1, T0, 4, "kept"),
    ], DELETE_SCHEMA), table)


@pytest.mark.parametrize(("by_value", "broadcast"), [(True, True), (False, True), (False, False)],
                         ids=["delete-by-value", "merge", "merge-shuffled"])
def test_deleting_matching_rows_removes_exactly_those_null_matching_null(
    lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch, by_value: bool, broadcast: bool
) -> None:
    """Rows to delete: a, NULL and the awkward id on every column of D1 (``a`` twice); the
    ``where`` keeps D2's ``a``. The same result by the DELETE that names the values and, above
    its limit, by the MERGE, with the values broadcast or, above that limit, shuffled."""
    table = ("silver.delete_matching_"
             f"{'by_value' if by_value else 'by_merge'}{'' if broadcast else '_shuffled'}")
    delete_seed(lakehouse, table)
    if not by_value:
        monkeypatch.setattr(tables, "DELETE_BY_VALUE_ROWS", 1)
    if not broadcast:
        monkeypatch.setattr(tables, "DELETE_BROADCAST_ROWS", 0)
    matching = local_frame(lakehouse.spark, [
        ("a", D1, 1), ("a", D1, 1), (None, D1, 2), (AWKWARD, D1, 3), ("a", D2, 1),
    ], "id string, day date, n bigint")

    lakehouse.delete_matching(table, matching, on=["id", "day", "n"],
                              where=f"t.day = DATE'{D1.isoformat()}'")

    assertDataFrameEqual(lakehouse.read(table), local_frame(lakehouse.spark, [
        ("a", D2, T0, 1, "other day"), ("b", D1, T0, 4, "kept")], DELETE_SCHEMA))
    last = lakehouse.history(table, limit=1)[0]
    assert last.operation == ("DELETE" if by_value else "MERGE")


def test_rows_matched_on_a_timestamp_are_deleted_by_the_merge(lakehouse: Lakehouse) -> None:
    table = "silver.delete_matching_timestamp"
    delete_seed(lakehouse, table)
    matching = local_frame(lakehouse.spark, [("a", T0), (None, T1)], "id string, at timestamp")

    lakehouse.delete_matching(table, matching, on=["id", "at"])

    assertDataFrameEqual(lakehouse.read(table), local_frame(lakehouse.spark, [
        (AWKWARD, D1, T2, 3, "awkward"), ("b", D1, T0, 4, "kept")], DELETE_SCHEMA))
    assert lakehouse.history(table, limit=1)[0].operation == "MERGE"


def test_deleting_no_matching_rows_commits_nothing(lakehouse: Lakehouse) -> None:
    table = "silver.delete_matching_none"
    delete_seed(lakehouse, table)
    before = lakehouse.history(table, limit=1)[0].version
    nothing = local_frame(lakehouse.spark, [], "id string")

    lakehouse.delete_matching(table, nothing, on=["id"])

    assert lakehouse.history(table, limit=1)[0].version == before
    assert lakehouse.read(table).count() == 5


@pytest.mark.parametrize(("value", "literal"), [
    (None, "NULL"), (True, "TRUE"), (7, "7L"), (2**63, None), (Decimal("12.50"), "12.50BD"),
    (Decimal("0E-8"), "0.00000000BD"),
    ("it's \\x", "'it\\'s \\\\x'"), (D1, "DATE'2026-11-02'"),
    (datetime(2026, 11, 2, 9, 30), None), (1.5, None), (Decimal("NaN"), None),
])
def test_a_value_becomes_the_spark_sql_literal_of_its_type(
    value: object, literal: str | None
) -> None:
    assert sql_literal(value) == literal
