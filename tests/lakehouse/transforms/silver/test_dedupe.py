"""mark_duplicates: the kept row, exact copies and older versions; mark_unchanged: rows the table
already holds, and rows older than its version; new_in_load, without_resent: a full load's
rows that the load before did not send, for a day and for a whole history."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.silver.dedupe import (
    RESENT,
    history_digests,
    kept_rows,
    mark_duplicates,
    mark_unchanged,
    new_in_load,
    with_digests,
    without_resent,
)

SCHEMA = "id STRING, version TIMESTAMP, value STRING, _source_file STRING"
MARKED = f"{SCHEMA}, _drop_rule STRING"
V1, V2 = datetime(2026, 11, 2, 8, 0), datetime(2026, 11, 2, 9, 0)


def _mark(frame: DataFrame) -> DataFrame:
    return mark_duplicates(frame, ["id"], [sf.col("version").desc(), sf.col("_source_file")])


def test_first_row_by_order_is_kept_and_its_exact_copy_is_a_duplicate_record(
    spark: SparkSession,
) -> None:
    rows = [("a", V1, "x", "f1"), ("a", V1, "x", "f2")]

    marked = _mark(local_frame(spark, rows, SCHEMA))

    expected = [("a", V1, "x", "f1", None), ("a", V1, "x", "f2", "duplicate_record")]
    assertDataFrameEqual(marked, local_frame(spark, expected, MARKED), checkRowOrder=False)


def test_older_version_is_superseded(spark: SparkSession) -> None:
    rows = [("a", V1, "x", "f1"), ("a", V2, "y", "f1"), ("b", V1, "z", "f1")]

    marked = _mark(local_frame(spark, rows, SCHEMA))

    expected = [
        ("a", V1, "x", "f1", "superseded_by_newer_version"),
        ("a", V2, "y", "f1", None),
        ("b", V1, "z", "f1", None),
    ]
    assertDataFrameEqual(marked, local_frame(spark, expected, MARKED), checkRowOrder=False)


def test_copy_of_an_older_version_is_a_duplicate_record_not_a_version(
    spark: SparkSession,
) -> None:
    # One dirt kind, one rule: the copy counts as duplicate_record, its original as superseded.
    rows = [("a", V1, "x", "f1"), ("a", V1, "x", "f2"), ("a", V2, "y", "f1")]

    marked = _mark(local_frame(spark, rows, SCHEMA))

    expected = [
        ("a", V1, "x", "f1", "superseded_by_newer_version"),
        ("a", V1, "x", "f2", "duplicate_record"),
        ("a", V2, "y", "f1", None),
    ]
    assertDataFrameEqual(marked, local_frame(spark, expected, MARKED), checkRowOrder=False)


def test_copies_tied_on_the_whole_order_keep_one_and_mark_the_rest(spark: SparkSession) -> None:
    rows = [("a", V1, "x", "f1")] * 3

    marked = mark_duplicates(
        local_frame(spark, rows, SCHEMA).repartition(3), ["id"], [sf.col("version").desc()]
    )

    expected = [("a", V1, "x", "f1", None)] + [("a", V1, "x", "f1", "duplicate_record")] * 2
    assertDataFrameEqual(marked, local_frame(spark, expected, MARKED), checkRowOrder=False)


def test_kept_rows_drop_the_marker_column(spark: SparkSession) -> None:
    rows = [("a", V1, "x", "f1"), ("a", V2, "y", "f1")]

    kept = kept_rows(_mark(local_frame(spark, rows, SCHEMA)))

    assertDataFrameEqual(kept, local_frame(spark, [("a", V2, "y", "f1")], SCHEMA))


@pytest.mark.parametrize("few", [False, True], ids=["table-joined", "table-narrowed-first"])
def test_the_rows_of_a_key_all_equal_to_the_tables_version_are_unchanged_and_held_is_marked(
    spark: SparkSession, few: bool
) -> None:
    held = "id STRING, version TIMESTAMP, value STRING"
    current = local_frame(
        spark,
        [(key, V1, None if key == "b" else "x") for key in ("a", "b", "c", "d", "e", "g")], held
    )
    batch = [
        ("a", V1, "x", "day-2"),  # the same version, landed again
        ("a", V1, "x", "day-2b"),  # ... twice
        ("b", V1, None, "day-2"),  # NULL equals NULL
        ("c", V1, "y", "day-2"),  # another value
        ("d", V2, "x", "day-2"),  # a newer version
        ("e", V1, "x", "day-2"),  # the same version, but its key has another row:
        ("e", V2, None, "day-2"),  # the dedupe must see both
        ("f", V1, "x", "day-2"),  # a key the table lacks
        (None, V1, "x", "day-2"),  # no key: never held
    ]

    marked = mark_unchanged(local_frame(spark, batch, f"{held}, _source_file STRING"),
                            current, ["id"], ["version", "value"], few=few, held_as="_held")

    expected = [(*row, "unchanged" if row[0] in ("a", "b") else None, row[0] not in ("f", None))
                for row in batch]
    assertDataFrameEqual(
        marked,
        local_frame(spark, expected,
                    f"{held}, _source_file STRING, _drop_rule STRING, _held BOOLEAN"),
        checkRowOrder=False,
    )


@pytest.mark.parametrize("few", [False, True], ids=["table-joined", "table-narrowed-first"])
def test_a_row_older_than_the_tables_version_is_superseded_unless_its_key_is_unchanged(
    spark: SparkSession, few: bool
) -> None:
    held = "id STRING, version TIMESTAMP, value STRING"
    current = local_frame(
        spark,
        [("a", V2, "x"), ("b", V2, "x"), ("c", V2, "x"), ("d", None, "x"), ("e", V1, "x")], held
    )
    batch = [
        ("a", V2, "x", "day-2"),  # the table's version: the whole key is unchanged
        ("b", V2, "x", "day-2"),  # the table's version, but its key has an older row:
        ("b", V1, "y", "day-2"),  # that one can never replace it
        ("c", V2, "y", "day-2"),  # as old, another value: a MERGE applies it
        ("c", None, "y", "day-2"),  # no version against a known one: older
        ("d", V1, "y", "day-2"),  # a version against none: newer
        ("e", V2, "y", "day-2"),  # newer
        ("f", V1, "y", "day-2"),  # a key the table lacks
    ]

    marked = mark_unchanged(local_frame(spark, batch, f"{held}, _source_file STRING"),
                            current, ["id"], ["version", "value"], ["version"], few=few)

    rules = {0: "unchanged", 2: "superseded_by_newer_version", 4: "superseded_by_newer_version"}
    expected = [(*row, rules.get(index)) for index, row in enumerate(batch)]
    assertDataFrameEqual(
        marked,
        local_frame(spark, expected, f"{held}, _source_file STRING, _drop_rule STRING"),
        checkRowOrder=False,
    )


LOAD = "id STRING, value STRING, extra MAP<STRING,STRING>, _source_file STRING, _proc_date DATE"
DAY_1, DAY_2, DAY_3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)
IGNORED = ["_source_file", "_proc_date"]


def test_a_days_load_keeps_only_the_records_the_load_before_did_not_send(
    spark: SparkSession,
) -> None:
    before = [
        ("a", "x", None, "day-1", DAY_1),
        ("b", None, None, "day-1", DAY_1),
        ("c", "x", {"k": "1", "j": "2"}, "day-1", DAY_1),
        ("d", "x", None, "day-1", DAY_1),
        ("e", "x", None, "day-1", DAY_1),
    ]
    today = [
        ("a", "x", None, "day-2", DAY_2),  # resent, from another file: not new
        ("a", "x", None, "day-2b", DAY_2),  # ... twice
        ("b", None, None, "day-2", DAY_2),  # NULL equals NULL
        ("c", "x", {"j": "2", "k": "1"}, "day-2", DAY_2),  # a map equal but for its order
        ("d", "y", None, "day-2", DAY_2),  # another value
        ("e", "x", {"k": "1"}, "day-2", DAY_2),  # another map
        ("f", "x", None, "day-2", DAY_2),  # a record the load before lacked
    ]
    rows, earlier = local_frame(spark, today, LOAD), local_frame(spark, before, LOAD)

    digests = new_in_load(rows, earlier, ignored=IGNORED)
    new = with_digests(rows, digests, ignored=IGNORED)

    assert digests.count() == 3
    assertDataFrameEqual(new, local_frame(spark, today[4:], LOAD), checkRowOrder=False)
    assertDataFrameEqual(with_digests(rows, digests, ignored=IGNORED, broadcast=True), new,
                         checkRowOrder=False)


@pytest.mark.parametrize(
    ("returning", "broadcast_rows"),
    [("d", 10), ("d", 0), (None, 10)],
    ids=["resent-left-out-broadcast", "resent-left-out-shuffled", "new-taken-broadcast"],
)
def test_a_whole_history_leaves_out_the_records_each_loads_predecessor_sent(
    spark: SparkSession, returning: str | None, broadcast_rows: int
) -> None:
    history = [
        ("a", "x", None, "day-1", DAY_1),
        ("a", "x", None, "day-2", DAY_2),  # sent by day 1
        ("a", "x", None, "day-2b", DAY_2),  # ... twice
        ("a", "x", None, "day-3", DAY_3),  # sent by day 2
        ("b", "x", None, "day-1", DAY_1),
        ("b", "x", None, "day-3", DAY_3),  # back after a day away: new to day 3
        ("c", "x", None, "day-2", DAY_2),
        ("c", "x", None, "day-2b", DAY_2),  # a copy within one load: both new
    ]
    if returning:  # one more new row than resent ones: the resent ones are left out
        history.append((returning, "x", None, "day-3", DAY_3))
    frame = local_frame(spark, history, LOAD)

    digests = history_digests(frame, {DAY_1: DAY_2, DAY_2: DAY_3}, load="_proc_date",
                              ignored=["_source_file"])
    new, left_out = without_resent(frame, digests, first=DAY_1, load="_proc_date",
                                   ignored=["_source_file"], broadcast_rows=broadcast_rows)

    assert digests.count() == len(history)
    assert digests.where(RESENT).count() == left_out == 3
    expected = [row for row in history if row[0] != "a" or row[4] == DAY_1]
    assertDataFrameEqual(new, local_frame(spark, expected, LOAD), checkRowOrder=False)
