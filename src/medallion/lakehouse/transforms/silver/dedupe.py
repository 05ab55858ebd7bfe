"""Mark the rows of a batch that silver drops by a named rule: exact copies, older versions and
rows the table already holds; and find the rows of a full load that the load before it sent too.

A batch reaches dedupe after the expectations, so every row has a non-NULL key. The kept row per
key is the first by the caller's ordering (latest first); every other row gets a rule name in
``_drop_rule``, so the pipeline can count the drops and conservation still adds up.
``mark_versions`` is what every silver table uses, from its spec's keys, ``sequence_by`` and
``build.tie_break`` / ``build.keep_current_when_null``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as sf
from pyspark.sql.types import MapType, StringType

DROP_RULE_COLUMN = "_drop_rule"
DUPLICATE_RECORD = "duplicate_record"
SUPERSEDED = "superseded_by_newer_version"
DROP_RULES: tuple[str, ...] = (DUPLICATE_RECORD, SUPERSEDED)
UNCHANGED = "unchanged"
"""A row of a key all of whose rows equal the version the table holds (``mark_unchanged``)."""
METADATA_PREFIX = "_"


def content_columns(frame: DataFrame) -> list[str]:
    """The columns that make up a record's content: every column not starting with ``_``."""
    return [name for name in frame.columns if not name.startswith(METADATA_PREFIX)]


def mark_duplicates(frame: DataFrame, keys: Sequence[str], order_by: Sequence[Column]) -> DataFrame:
    """Add ``_drop_rule``: NULL on the kept row per key, else why the row is dropped.

    Grain: one row per input row. The kept row is the first per ``keys`` by ``order_by``;
    ``order_by`` should end in tie-breakers that make it total, or the pick among equal rows is
    arbitrary. A dropped row is ``duplicate_record`` when its content (columns not starting with
    ``_``) equals that of a row ranked ahead of it within its key, an exact copy; otherwise it is
    an older or other version, ``superseded_by_newer_version``.
    """
    rank_in_key = "_dedupe_rank_in_key"
    rank_in_copies = "_dedupe_rank_in_copies"
    by_key = Window.partitionBy(*keys).orderBy(*order_by)
    # Copies are ranked by their rank within the key, not by order_by again: with ties in
    # order_by two row_number() calls could pick different "first" rows, and the kept row's copy
    # would then be called superseded instead of duplicate. Keys lead the partitioning, so this
    # window reuses the shuffle of the one above.
    non_key_content = [name for name in content_columns(frame) if name not in keys]
    by_content = Window.partitionBy(*keys, *non_key_content).orderBy(rank_in_key)
    return (
        frame.withColumn(rank_in_key, sf.row_number().over(by_key))
        .withColumn(rank_in_copies, sf.row_number().over(by_content))
        .withColumn(
            DROP_RULE_COLUMN,
            sf.when(sf.col(rank_in_key) == 1, sf.lit(None).cast(StringType()))
            .when(sf.col(rank_in_copies) > 1, sf.lit(DUPLICATE_RECORD))
            .otherwise(sf.lit(SUPERSEDED)),
        )
        .drop(rank_in_key, rank_in_copies)
    )


def kept_rows(marked: DataFrame) -> DataFrame:
    """The rows ``mark_duplicates`` keeps, without ``_drop_rule``.

    Grain: one row per key of the marked frame.
    """
    return marked.where(sf.col(DROP_RULE_COLUMN).isNull()).drop(DROP_RULE_COLUMN)


def dropped_rows(marked: DataFrame) -> DataFrame:
    """The rows ``mark_duplicates`` drops, with ``_drop_rule`` naming the rule.

    Grain: one row per dropped input row.
    """
    return marked.where(sf.col(DROP_RULE_COLUMN).isNotNull())


LANDING_ORDER = ("_ingest_ts", "_source_file")
"""After the sequence: the same version landed twice, the later landing wins."""


def latest_first(sequence_by: Sequence[str]) -> list[Column]:
    """The kept-row ordering: each sequence column descending (NULL last), then the latest
    landing (``_ingest_ts``, then ``_source_file``), each column once."""
    order = dict.fromkeys([*sequence_by, *LANDING_ORDER])
    return [sf.col(name).desc_nulls_last() for name in order]


def mark_versions(
    valid: DataFrame,
    keys: Sequence[str],
    sequence_by: Sequence[str],
    keep_current_when_null: Sequence[str] = (),
) -> DataFrame:
    """Valid rows with ``_drop_rule``: the latest version per key kept (``mark_duplicates``).

    Grain: one row per valid row; key of the kept rows: ``keys``. A late row replaces an earlier
    one only when its sequence is later. On the kept row, each ``keep_current_when_null`` field
    that is NULL (a CDC update) takes the latest non-NULL value among the key's rows in the
    batch, as the MERGE does with the target's current value: a batch holding both an order's
    ``c`` and a later ``u`` event keeps ``placed`` and the order_ts.
    """
    order = latest_first(sequence_by)
    marked = mark_duplicates(valid, keys, order)
    if not keep_current_when_null:
        return marked
    whole_key = (
        Window.partitionBy(*keys)
        .orderBy(*order)
        .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    )
    kept = sf.col(DROP_RULE_COLUMN).isNull()
    for name in keep_current_when_null:
        latest_known = sf.first(sf.col(name), ignorenulls=True).over(whole_key)
        marked = marked.withColumn(name, sf.when(kept, latest_known).otherwise(sf.col(name)))
    return marked.select(*valid.columns, DROP_RULE_COLUMN)


def mark_unchanged(
    batch: DataFrame,
    current: DataFrame,
    keys: Sequence[str],
    compared: Sequence[str],
    sequence_by: Sequence[str] = (),
    *,
    few: bool = False,
    held_as: str | None = None,
) -> DataFrame:
    """``batch`` with ``_drop_rule``: ``unchanged`` on the rows of a key that brings nothing new,
    ``superseded_by_newer_version`` on a row older than the version the table holds, else NULL.

    A key brings nothing new when ``current`` (the table: one row per key) has a row of it and
    each of the batch's rows of that key equals it in every ``compared`` column (NULL equal to
    NULL). A MERGE of such rows changes nothing; a source that sends every row each day (a full
    load) sends mostly these, and they need not be checked, deduplicated or merged again. A key
    with any other row keeps its rows, but one whose ``sequence_by`` is earlier than the held
    version's (compared left to right, as the MERGE compares them) can never replace it: it is
    marked superseded, to be checked (a bad row is still quarantined) and then dropped rather
    than deduplicated, so it cannot lend a CDC row carrying no status its own older one. A row
    with a NULL key is never marked. Grain: one row per batch row; columns: the batch's and
    ``_drop_rule``.

    With ``few`` (a batch small enough to send whole to every task: computed once, it is read
    twice), the table's rows are first narrowed to the batch's keys by a broadcast semi-join: a
    scan of the table, not a shuffle of it.

    ``held_as`` names a boolean column to add: whether ``current`` has a row of the row's key (the
    MERGE would update it, not insert it).
    """
    held_prefix = "_current_"
    compared = [name for name in dict.fromkeys(compared) if name not in keys]
    if few:
        current = current.join(sf.broadcast(batch.select(*keys)), list(keys), "left_semi")
    held = current.select(
        *(sf.col(name).alias(f"{held_prefix}{name}")
          for name in dict.fromkeys([*keys, *compared, *sequence_by])),
    )
    found = held[f"{held_prefix}{keys[0]}"].isNotNull()  # the table's keys are never NULL
    same = found & functools.reduce(
        Column.__and__,
        [batch[name].eqNullSafe(held[f"{held_prefix}{name}"]) for name in compared],
        sf.lit(True),
    )
    # Partitioned by the key, as the join's rows already are (a sort-merge join on the key).
    whole_key_same = sf.min(same).over(Window.partitionBy(*(batch[key] for key in keys)))
    older = sf.lit(False)
    if sequence_by:
        later_or_same = _later_or_same([batch[name] for name in sequence_by],
                                       [held[f"{held_prefix}{name}"] for name in sequence_by])
        older = found & ~sf.coalesce(later_or_same, sf.lit(False))
    on = functools.reduce(
        Column.__and__, [batch[key] == held[f"{held_prefix}{key}"] for key in keys])
    return batch.join(held, on, "left").select(
        *(batch[name] for name in batch.columns),
        sf.when(whole_key_same, sf.lit(UNCHANGED))
        .when(older, sf.lit(SUPERSEDED))
        .cast(StringType()).alias(DROP_RULE_COLUMN),
        *([found.alias(held_as)] if held_as else []),
    )


def _later_or_same(sequence: Sequence[Column], current: Sequence[Column]) -> Column:
    """Whether ``sequence`` is later than ``current`` or equal to it, compared left to right (a
    NULL current is earlier, NULL equals NULL): the rows a sequenced MERGE may apply."""
    later_or_same = sf.lit(True)
    for value, held in reversed(list(zip(sequence, current, strict=True))):
        later = (value > held) | (held.isNull() & value.isNotNull())
        later_or_same = later | (value.eqNullSafe(held) & later_or_same)
    return later_or_same


DIGEST = ("_record_digest_64", "_record_digest_32")
"""A record's content in 96 bits (xxhash64 and murmur3): two records of a full load with equal
digests are taken as equal. A false match needs two different records of a load and the one
before it to agree in all 96 bits; at 10M records a load that is ~10^-15 a day."""
RECORD_LOAD = "_record_load"
"""The load a digest's record came with (``history_digests``)."""

RESENT = "_resent"
"""Whether the load before a digest's load sent its record too (``history_digests``)."""


def record_digest(rows: DataFrame, ignored: Sequence[str] = ()) -> list[Column]:
    """The ``DIGEST`` columns of ``rows``' records: over every column but ``ignored``, in order
    (NULL distinct from every value, a map by its sorted entries)."""
    content = []
    for field in rows.schema.fields:
        if field.name in ignored:
            continue
        column = sf.col(field.name)
        if isinstance(field.dataType, MapType):  # entries in insertion order: sort them
            column = sf.array_sort(sf.map_entries(column))
        content.append(sf.struct(column.isNull().alias("null"), column.alias("value")))
    return [sf.xxhash64(*content).alias(DIGEST[0]), sf.hash(*content).alias(DIGEST[1])]


def _load_digest(rows: DataFrame, load: str, ignored: Sequence[str]) -> list[Column]:
    """The ``DIGEST`` of each row's record and its ``load`` (as ``RECORD_LOAD``): the load is
    not part of the record, so a row resent by a later load has the same digest."""
    return [*record_digest(rows, [load, *ignored]), sf.col(load).alias(RECORD_LOAD)]


def new_in_load(rows: DataFrame, earlier: DataFrame, *, ignored: Sequence[str] = ()) -> DataFrame:
    """The ``DIGEST`` of each of ``rows``' records that ``earlier`` (the load before) did not send.

    Grain: one row per new row of ``rows`` (copies within the load each count); columns: the
    digest. Both sides are narrow: the rows themselves are taken by ``with_digests``.
    """
    return rows.select(*record_digest(rows, ignored)).join(
        earlier.select(*record_digest(earlier, ignored)), list(DIGEST), "left_anti")


def with_digests(
    rows: DataFrame,
    digests: DataFrame,
    *,
    ignored: Sequence[str] = (),
    load: str | None = None,
    keep: bool = True,
    broadcast: bool = False,
) -> DataFrame:
    """The ``rows`` whose record's digest is among ``digests`` (``keep``), or is not
    (``keep=False``); with ``load``, the digest of a row of that load (``RECORD_LOAD``; the
    load is not part of the record, as in ``history_digests``). ``broadcast``: the digests are
    sent whole to every task, and the rows are not shuffled. Grain and columns: ``rows``'."""
    if load is None:
        own, names = record_digest(rows, ignored), list(DIGEST)
    else:
        own, names = _load_digest(rows, load, ignored), [*DIGEST, RECORD_LOAD]
    wanted = sf.broadcast(digests) if broadcast else digests
    return rows.join(
        wanted,
        functools.reduce(Column.__and__, [
            column == wanted[name] for column, name in zip(own, names, strict=True)]),
        "left_semi" if keep else "left_anti",
    )


def history_digests(
    rows: DataFrame, follows: Mapping[date, date], *, load: str, ignored: Sequence[str] = ()
) -> DataFrame:
    """The ``DIGEST`` and ``load`` (``RECORD_LOAD``) of each row of a full-load source's whole
    history, and whether the load its own follows sent it too (``RESENT``; ``follows`` maps each
    load to the next one): what a day's ``new_in_load`` would have left out, for every load at
    once.

    Grain: one row per row of ``rows``; columns: the digest, ``RECORD_LOAD`` and ``RESENT``.
    Computed from the digests alone (a narrow shuffle); ``with_digests`` takes the rows by the
    resent ones (``keep=False``) or by the new ones.
    """
    digests = rows.select(*_load_digest(rows, load, ignored))
    previous = sf.create_map(*(sf.lit(day) for pair in sorted(follows.items())
                               for day in reversed(pair)))[sf.col(RECORD_LOAD)]
    sent_in = sf.collect_set(RECORD_LOAD).over(Window.partitionBy(*DIGEST))
    return digests.select(
        *DIGEST, RECORD_LOAD,
        sf.coalesce(sf.array_contains(sent_in, previous), sf.lit(False)).alias(RESENT),
    )


def without_resent(
    rows: DataFrame,
    history: DataFrame,
    *,
    first: date,
    load: str,
    ignored: Sequence[str] = (),
    broadcast_rows: int,
) -> tuple[DataFrame, int]:
    """A full-load source's whole history ``rows`` without the rows the load before theirs sent
    too, and how many those were; ``history`` is their ``history_digests`` (computed once: it is
    counted, then read again), ``first`` the first load.

    The first load is kept whole and the later loads' rows are taken by their new digests (a
    day's changes: few); when those are the more, or more than ``broadcast_rows``, the resent
    rows are left out by theirs instead. Either set is sent whole to every task (the rows are
    not shuffled) if it holds at most ``broadcast_rows``. Grain and columns: ``rows``'.
    """
    later = sf.col(RECORD_LOAD) != sf.lit(first)
    counts = history.groupBy(RESENT, later.alias("later")).count().collect()
    resent = sum(row["count"] for row in counts if row[RESENT])
    new_later = sum(row["count"] for row in counts if row["later"] and not row[RESENT])
    digests = [*DIGEST, RECORD_LOAD]
    if new_later <= min(resent, broadcast_rows):
        in_first = sf.col(load) == sf.lit(first)
        taken = with_digests(
            rows.where(~in_first), history.where(later & ~sf.col(RESENT)).select(*digests),
            ignored=ignored, load=load, broadcast=True)
        return rows.where(in_first).unionByName(taken), resent
    return with_digests(rows, history.where(RESENT).select(*digests), ignored=ignored,
                        load=load, keep=False, broadcast=resent <= broadcast_rows), resent
