"""Silver -> gold transforms, one module per gold table, and the table-level gold checks.

Row-level gold rules live in ``config/dq/gold/*.yml``; the two checks that need more than one row,
primary-key uniqueness and foreign-key existence, are these pure functions: each returns the
offending rows, so an empty result means the check passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import StructType

DUPLICATE_COUNT_COLUMN = "row_count"
NOT_REVENUE_STATUSES: tuple[str, ...] = ("cancelled", "returned")
"""Orders in these states count as orders but add nothing to revenue or lifetime value."""


@dataclass(frozen=True)
class GoldSlice:
    """The part of a gold table a day's silver changes touch, and how to rebuild just that part.

    ``scope``: what the changes touch, in the sources' terms (e.g. ``customer_id``); the step
    computes it once. ``keys(scope)``: the gold keys to recompute (the table's key columns as gold
    holds them; a key with no row after the rebuild is deleted). ``sources(scope)``: the
    transform's inputs by table name, narrowed to the rows those keys need, so the transform on
    them yields exactly the table's rows of ``keys``, as a full rebuild would; the step checks
    their orders' USD rates.
    """

    scope: DataFrame
    keys: Callable[[DataFrame], DataFrame]
    sources: Callable[[DataFrame], Mapping[str, DataFrame]]
    rows: Callable[[DataFrame, DataFrame], DataFrame] | None = None
    """When given, how the keys' rows are built instead of the transform over ``sources``: from
    the scope and the table's current rows of those keys (a table of sums adds the changes'
    signed amounts to its rows). ``sources`` then names the source rows those rows rest on."""


def semi_join(frame: DataFrame, keys: DataFrame) -> DataFrame:
    """The rows of ``frame`` whose ``keys`` columns match a row of ``keys`` (NULL matches NULL).

    ``keys`` is broadcast: it is what a day's changes touch, a small part of ``frame``, which is
    then scanned once and never shuffled.
    """
    # Renamed: ``keys`` is often derived from ``frame`` itself, whose columns would be ambiguous.
    renamed = sf.broadcast(
        keys.select(*(sf.col(name).alias(f"_key_{name}") for name in keys.columns))
    )
    condition = [sf.col(name).eqNullSafe(sf.col(f"_key_{name}")) for name in keys.columns]
    return frame.join(renamed, condition, "left_semi")


def changed_rows(changes: DataFrame) -> DataFrame:
    """A change feed's rows as they were and as they are: inserts, deletes and both images of
    each update (a row that moved between keys touches both)."""
    return changes.where(sf.col("_change_type").isin(
        "insert", "delete", "update_preimage", "update_postimage"
    ))


def counts_as_revenue(status: Column) -> Column:
    """True unless the order was cancelled or returned (a NULL status counts)."""
    return ~sf.coalesce(status.isin(*NOT_REVENUE_STATUSES), sf.lit(False))


def conform(frame: DataFrame, schema: StructType) -> DataFrame:
    """``frame``'s columns named in ``schema``, in its order, cast to its types."""
    return frame.select(*(sf.col(field.name).cast(field.dataType) for field in schema.fields))


def duplicate_keys(frame: DataFrame, keys: Sequence[str]) -> DataFrame:
    """The key values that occur more than once in ``frame``, with how often.

    Grain and key: one row per duplicated key value (``keys``). Columns: ``keys``, then
    ``row_count`` BIGINT. A NULL key groups with other NULLs, so repeated NULL keys show up too.
    """
    return (
        frame.groupBy(*keys)
        .agg(sf.count(sf.lit(1)).alias(DUPLICATE_COUNT_COLUMN))
        .where(sf.col(DUPLICATE_COUNT_COLUMN) > 1)
    )


def missing_references(
    frame: DataFrame, key: str, reference: DataFrame, reference_key: str
) -> DataFrame:
    """The rows of ``frame`` whose ``key`` is not a ``reference_key`` of ``reference``.

    Grain: one row per offending row of ``frame``, with its columns. A NULL ``key`` references
    nothing, so it is reported.
    """
    referenced = reference.select(sf.col(reference_key).alias("_referenced_key")).distinct()
    return frame.join(referenced, frame[key] == referenced["_referenced_key"], "left_anti")
