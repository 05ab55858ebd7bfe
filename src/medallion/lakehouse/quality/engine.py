"""The expectation engine: every rule of a table checked in one pass, counted in one aggregation.

A rule is a Spark SQL predicate describing a VALID row; NULL counts as a failure. A row failing a
quarantine rule is quarantined; else a row failing a drop rule is dropped (attributed to the first
failing drop rule in spec order); else it is valid. Given the quarantine's writer, the counts are
taken in that write's pass (``DataFrame.observe``) instead of a pass of their own. Only DataFrame
APIs are used, so the engine runs unchanged under Spark Connect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as sf

from medallion.lakehouse.errors import ExpectationFailed, SpecError
from medallion.lakehouse.quality.metrics import DQMetrics, ExpectationMetrics
from medallion.lakehouse.quality.spec import Action, Expectation, Lookup
from medallion.lakehouse.spark import counted_while

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ERRORS_COLUMN = "_errors"
RUN_ID_COLUMN = "_run_id"
DROPPED_BY_COLUMN = "_dropped_by"
ERRORS_TYPE = "array<struct<name:string,expression:string>>"
EXAMPLE_KEYS = 5

# Working columns; the double underscore keeps them clear of any column a table may have.
_QUARANTINED = "__dq_quarantined"
_DROPPED_BY = "__dq_dropped_by"
_OK_PREFIX = "__dq_ok_"


class ExpectationsFailed(ExpectationFailed):
    """``expect_or_fail`` rules failed; ``metrics`` holds the counts taken before raising."""

    def __init__(self, message: str, metrics: DQMetrics) -> None:
        super().__init__(message)
        self.metrics = metrics


QUARANTINE_SAMPLE_ROWS = 10


@dataclass(frozen=True)
class QuarantineSample:
    """A few quarantined rows as a notebook shows them: ``_errors`` first, as the names of the
    rules each row failed (``"a, b"``), then the row's columns."""

    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]


def sample_quarantined(rows: DataFrame, limit: int = QUARANTINE_SAMPLE_ROWS) -> QuarantineSample:
    """The first ``limit`` of quarantined ``rows`` (with ``_errors``), as a notebook shows them."""
    if ERRORS_COLUMN in rows.columns:
        rows = rows.withColumn(ERRORS_COLUMN, sf.concat_ws(", ", f"{ERRORS_COLUMN}.name"))
        rows = rows.select(ERRORS_COLUMN, *[c for c in rows.columns if c != ERRORS_COLUMN])
    return QuarantineSample(tuple(rows.columns),
                            tuple(tuple(row) for row in rows.limit(limit).collect()))


@dataclass(frozen=True)
class CheckedFrame:
    """The outcome of a check: lazy valid / quarantined / dropped rows, and the counts."""

    valid: DataFrame
    quarantined: DataFrame
    dropped: DataFrame
    metrics: DQMetrics


def check_expectations(
    frame: DataFrame,
    expectations: Sequence[Expectation],
    *,
    dataset: str,
    run_id: str,
    key_columns: Sequence[str] = (),
    write_quarantine: Callable[[DataFrame], None] | None = None,
) -> CheckedFrame:
    """Check every rule in one pass; raise ``ExpectationsFailed`` when an ``expect_or_fail`` fails.

    ``valid`` has the input's columns; ``quarantined`` adds ``_errors`` (every rule the row failed,
    spec order) and ``_run_id`` (this run's, replacing an input column of that name); ``dropped``
    adds ``_errors`` and ``_dropped_by``.

    With ``write_quarantine``, the check also writes the quarantined rows through it, and takes its
    counts in that write's own pass over the input (``DataFrame.observe``), so no separate
    counting pass is needed. With an ``expect_or_fail`` rule it counts first instead, so that a
    failing rule raises before anything is written.
    """
    _require_unique_names(expectations, dataset)
    columns = frame.columns
    annotated = _annotate(frame, expectations)
    is_valid = ~sf.col(_QUARANTINED) & sf.col(_DROPPED_BY).isNull()
    is_dropped = ~sf.col(_QUARANTINED) & sf.col(_DROPPED_BY).isNotNull()
    kept = [name for name in columns if name not in (ERRORS_COLUMN, RUN_ID_COLUMN)]

    def quarantined_rows(rows: DataFrame) -> DataFrame:
        return rows.where(sf.col(_QUARANTINED)).select(
            *_columns(kept),
            _failed_rules(expectations).alias(ERRORS_COLUMN),
            sf.lit(run_id).cast("string").alias(RUN_ID_COLUMN),
        )

    has_fail_rules = any(rule.action is Action.FAIL for rule in expectations)
    counted_while_writing = False
    if write_quarantine is not None and not has_fail_rules:
        counts = counted_while(
            annotated,
            _count_columns(expectations),
            lambda rows: write_quarantine(quarantined_rows(rows)),
        )
        counted_while_writing = True
    else:
        counts = annotated.agg(*_count_columns(expectations)).collect()[0].asDict()
    metrics = _metrics(counts, expectations, dataset)
    metrics.check_conservation()
    failing = [
        rule for rule in expectations
        if rule.action is Action.FAIL and metrics.failed_of(rule.name) > 0
    ]
    if failing:
        raise ExpectationsFailed(
            _failure_message(annotated, expectations, failing, metrics, dataset, key_columns),
            metrics,
        )
    if write_quarantine is not None and not counted_while_writing:  # counted first: fail rules
        write_quarantine(quarantined_rows(annotated))
    return CheckedFrame(
        valid=annotated.where(is_valid).select(*_columns(columns)),
        quarantined=quarantined_rows(annotated),
        dropped=annotated.where(is_dropped).select(
            *_columns(name for name in columns if name not in (ERRORS_COLUMN, DROPPED_BY_COLUMN)),
            _failed_rules(expectations).alias(ERRORS_COLUMN),
            sf.col(_DROPPED_BY).alias(DROPPED_BY_COLUMN),
        ),
        metrics=metrics,
    )


def add_lookups(
    frame: DataFrame, lookups: Sequence[Lookup], frames: Mapping[str, DataFrame]
) -> DataFrame:
    """Add one boolean column per lookup: does the row's key exist in the lookup table?

    Same rows, same columns plus the flags; a NULL key gives False.
    """
    for index, lookup in enumerate(lookups):
        if lookup.table not in frames:
            raise SpecError(
                f"lookup {lookup.name!r}: expected a frame for table {lookup.table!r}, found "
                f"frames for {sorted(frames) or 'no tables'}"
            )
        if lookup.name in frame.columns:
            raise SpecError(
                f"lookup {lookup.name!r}: expected a new column name, found a column of that "
                "name in the frame already"
            )
        # Renamed keys keep the join unambiguous even when both sides derive from one frame.
        renamed = [f"__dq_lookup_{index}_{position}" for position in range(len(lookup.on))]
        flag = f"__dq_lookup_{index}_found"
        pairs = list(zip(lookup.on, renamed, strict=True))
        keys = (
            frames[lookup.table]
            .select(*[_column(key).alias(alias) for key, alias in pairs])
            .where(" AND ".join(f"{alias} IS NOT NULL" for alias in renamed))
            .distinct()
            .withColumn(flag, sf.lit(True))
        )
        condition = [_column(key) == sf.col(alias) for key, alias in pairs]
        frame = frame.join(sf.broadcast(keys), on=condition, how="left").select(
            *_columns(frame.columns),
            sf.coalesce(sf.col(flag), sf.lit(False)).alias(lookup.name),
        )
    return frame


def _column(name: str) -> Column:
    """A column by its exact name (quoted: a name may hold dots or spaces)."""
    return sf.col("`" + name.replace("`", "``") + "`")


def _columns(names: Iterable[str]) -> list[Column]:
    """Columns by their exact names, in order."""
    return [_column(name) for name in names]


def _require_unique_names(expectations: Sequence[Expectation], dataset: str) -> None:
    """Rule names identify counts and ``_errors`` entries, so each must be used once."""
    seen: set[str] = set()
    for rule in expectations:
        if rule.name in seen:
            raise SpecError(f"{dataset}: rule name {rule.name!r} is used twice; rename one")
        seen.add(rule.name)


def _ok_column(index: int) -> str:
    """The working column holding whether a row passes rule ``index`` (NULL counts as failing)."""
    return f"{_OK_PREFIX}{index}"


def _failed_rules(expectations: Sequence[Expectation]) -> Column:
    """The rules a row fails, in spec order, as ``ARRAY<STRUCT<name, expression>>``.

    Read from the per-rule pass flags ``_annotate`` adds, so no predicate is evaluated twice.
    """
    if not expectations:
        return sf.array().cast(ERRORS_TYPE)
    entries = [
        sf.when(
            ~sf.col(_ok_column(index)),
            sf.struct(sf.lit(rule.name).alias("name"), sf.lit(rule.expression).alias("expression")),
        )
        for index, rule in enumerate(expectations)
    ]
    return sf.filter(sf.array(*entries), lambda entry: entry.isNotNull()).cast(ERRORS_TYPE)


def _annotate(frame: DataFrame, expectations: Sequence[Expectation]) -> DataFrame:
    """The frame plus one pass flag per rule, and the outcome (quarantined, dropped by) of each row.

    Plain boolean columns: the counting aggregation reads them directly, and the ``_errors``
    array is built only where it is written (quarantined and dropped rows) or shown.
    """
    with_flags = frame.select(
        "*",
        *[
            sf.coalesce(sf.expr(rule.expression), sf.lit(False)).alias(_ok_column(index))
            for index, rule in enumerate(expectations)
        ],
    )
    fails = {rule.name: ~sf.col(_ok_column(index)) for index, rule in enumerate(expectations)}
    quarantined = sf.lit(False)
    for name in _names(expectations, Action.QUARANTINE):
        quarantined = quarantined | fails[name]
    # The first failing drop rule in spec order names the drop.
    dropped_by: Column = sf.lit(None).cast("string")
    for name in reversed(_names(expectations, Action.DROP)):
        dropped_by = sf.when(fails[name], sf.lit(name)).otherwise(dropped_by)
    return with_flags.select("*", quarantined.alias(_QUARANTINED), dropped_by.alias(_DROPPED_BY))


def _names(expectations: Sequence[Expectation], action: Action) -> list[str]:
    """The names of the rules with ``action``, in spec order."""
    return [rule.name for rule in expectations if rule.action is action]


def _count_columns(expectations: Sequence[Expectation]) -> list[Column]:
    """Every count of the check as aggregates over the pass flags: one pass over the data."""
    quarantined = sf.col(_QUARANTINED)
    dropped_by = sf.col(_DROPPED_BY)
    return [
        sf.count(sf.lit(1)).alias("rows_in"),
        sf.count_if(~quarantined & dropped_by.isNull()).alias("rows_valid"),
        sf.count_if(quarantined).alias("rows_quarantined"),
        *[
            sf.count_if(~quarantined & (dropped_by == sf.lit(name))).alias(f"dropped_{i}")
            for i, name in enumerate(_names(expectations, Action.DROP))
        ],
        *[
            sf.count_if(~sf.col(_ok_column(i))).alias(f"failed_{i}")
            for i in range(len(expectations))
        ],
    ]


def _metrics(
    counts: Mapping[str, int], expectations: Sequence[Expectation], dataset: str
) -> DQMetrics:
    """The check's metrics from the values of ``_count_columns``."""
    rows_in = int(counts["rows_in"])
    drop_rules = _names(expectations, Action.DROP)
    return DQMetrics(
        dataset=dataset,
        rows_in=rows_in,
        rows_valid=int(counts["rows_valid"]),
        rows_quarantined=int(counts["rows_quarantined"]),
        dropped_by_rule={name: int(counts[f"dropped_{i}"]) for i, name in enumerate(drop_rules)},
        expectations=tuple(
            ExpectationMetrics(
                name=rule.name,
                action=rule.action.value,
                expression=rule.expression,
                passed_records=rows_in - int(counts[f"failed_{i}"]),
                failed_records=int(counts[f"failed_{i}"]),
            )
            for i, rule in enumerate(expectations)
        ),
    )


def _failure_message(
    annotated: DataFrame,
    expectations: Sequence[Expectation],
    failing: Sequence[Expectation],
    metrics: DQMetrics,
    dataset: str,
    key_columns: Sequence[str],
) -> str:
    """Name each failing ``expect_or_fail`` rule, its failed count and a few example keys."""
    parts = []
    for rule in failing:
        part = (
            f"{rule.name} ({rule.expression}) failed for {metrics.failed_of(rule.name)} of "
            f"{metrics.rows_in} rows"
        )
        if key_columns:
            # Only on the failure path: a small extra job per failing rule, to show where to look.
            examples = (
                annotated.where(~sf.col(_ok_column(expectations.index(rule))))
                .select(*_columns(key_columns))
                .limit(EXAMPLE_KEYS)
                .collect()
            )
            shown = ", ".join(_describe_key(row.asDict(), key_columns) for row in examples)
            part += f", e.g. {shown}"
        parts.append(part)
    return (
        f"{dataset}: expected every expect_or_fail rule to pass, found "
        f"{len(failing)} failing: " + "; ".join(parts)
    )


def _describe_key(values: Mapping[str, object], key_columns: Sequence[str]) -> str:
    """``order_id='o1'`` or ``(rate_date=..., currency='EUR')`` for a composite key."""
    text = ", ".join(f"{name}={values[name]!r}" for name in key_columns)
    return text if len(key_columns) == 1 else f"({text})"
