"""Conform raw JSON lines to a contract: parse once, type, rescue, split off the unknown, check.

Each line is parsed once with ``from_json(value, 'MAP<STRING,STRING>')``: a JSON object becomes a
map of field -> raw text (strings as they are; nested objects and arrays as JSON text; numbers as
Jackson writes them back, which is the same text for every decimal of up to 15 significant
digits, e.g. ``61.56``, but normalises ``1.50`` to ``1.5`` and ``1e3`` to ``1000.0``); anything
else (an array, a bare value, broken JSON, an empty line) becomes NULL. Every function here is a
pure ``DataFrame``/``Column`` function. ``conform_lines`` holds, per line, everything a load's
later steps need (typed columns, rescued and unknown fields, the bad lines' text, the facts the
contract check counts), so a load step can persist it and read the load once; the contract check
is one aggregation over it (``profile_conformed``) whose result ``check_contract`` judges in
Python.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as sf
from pyspark.sql.types import MapType, StringType, TimestampType

from medallion.lakehouse.contracts.contract import EPOCH_MILLIS, Contract, ContractColumn
from medallion.lakehouse.errors import ContractViolation

RAW_RECORD = "_raw_record"
RECORD = "_record"
SOURCE_FILE = "_source_file"
RESCUED_DATA = "_rescued_data"
UNKNOWN_COLUMNS = "_unknown_columns"
IS_RECORD = "_is_record"
PACKED = "_packed"
PRESENT_PREFIX = "_present_"
RECORD_DDL = "MAP<STRING,STRING>"
RECORD_TYPE = MapType(StringType(), StringType(), True)
JSON_OBJECT_RULE = "record_is_json_object"
JSON_OBJECT_PREDICATE = f"from_json({RAW_RECORD}, '{RECORD_DDL}') IS NOT NULL"
"""The rule a raw line must pass to be a record; ``_record`` is that ``from_json``, kept."""

# timestamp_millis raises outside years 0001-9999 (ANSI): such a value is dirt, not an error.
_MIN_EPOCH_MILLIS = -62_135_596_800_000
_MAX_EPOCH_MILLIS = 253_402_300_799_999
_SAMPLES = 2


def parse_json_lines(lines: DataFrame) -> DataFrame:
    """Raw lines (``value``, ``_source_file``) -> ``_raw_record``, ``_record``, ``_source_file``.

    Grain: one row per raw line. ``_record`` is NULL when the line is not a JSON object.
    """
    return lines.select(
        sf.col("value").alias(RAW_RECORD),
        sf.expr(f"from_json(value, '{RECORD_DDL}')").alias(RECORD),
        sf.col(SOURCE_FILE),
    )


def raw_value(column: ContractColumn) -> Column:
    """The column's raw text in the record (NULL when absent or JSON null)."""
    return sf.col(RECORD).getItem(column.source_name)


def typed_value(column: ContractColumn) -> Column:
    """The column's raw text cast to its contract type; NULL when it does not cast."""
    raw = raw_value(column)
    if isinstance(column.spark_type, StringType):
        return raw
    if column.source_format == EPOCH_MILLIS:
        millis = raw.try_cast("bigint")
        return sf.when(
            millis.between(_MIN_EPOCH_MILLIS, _MAX_EPOCH_MILLIS), sf.timestamp_millis(millis)
        ).cast(TimestampType())
    return raw.try_cast(column.spark_type)


def failed_cast(column: ContractColumn) -> Column:
    """True when the record has a non-null raw value that did not cast to the column's type."""
    if isinstance(column.spark_type, StringType):
        return sf.lit(False)
    return raw_value(column).isNotNull() & typed_value(column).isNull()


def rescued_data(contract: Contract) -> Column:
    """``MAP<STRING,STRING>`` column name -> raw text of each value that failed its cast, or NULL.

    Keyed by the contract column name (``order_amount`` for Kafka's raw ``amount`` too), so one
    silver rule reads both order sources.
    """
    castable = [c for c in contract.columns if not isinstance(c.spark_type, StringType)]
    if not castable:
        return sf.lit(None).cast(RECORD_TYPE)
    # Most records cast cleanly: a plain test spares them building and filtering the map.
    any_failed = functools.reduce(Column.__or__, (failed_cast(column) for column in castable))
    entries = sf.map_filter(
        sf.create_map(
            *(
                part
                for column in castable
                for part in (
                    sf.lit(column.name),
                    sf.when(failed_cast(column), raw_value(column)),
                )
            )
        ),
        lambda _key, value: value.isNotNull(),
    )
    return sf.when(any_failed, entries).cast(RECORD_TYPE)


def unknown_fields(contract: Contract) -> Column:
    """``MAP<STRING,STRING>`` of the record's non-null fields the contract does not know.

    A field that is present but null carries no data (the Redshift extract writes every
    column of its table, ``_debug_flag: null`` included), so it is not drift.
    """
    known = sf.array(*(sf.lit(name) for name in contract.source_names))
    return sf.map_filter(
        sf.col(RECORD),
        lambda key, value: value.isNotNull() & ~sf.array_contains(known, key),
    )


def has_field(column: ContractColumn) -> Column:
    """True when the record has the column's field, JSON null included (NULL for a bad line)."""
    # Nearly every field carries a value: the key search runs only where the value is NULL.
    return raw_value(column).isNotNull() | sf.map_contains_key(
        sf.col(RECORD), sf.lit(column.source_name)
    )


def present_flag(column: ContractColumn) -> str:
    """The ``conform_lines`` column holding the column's ``has_field``."""
    return f"{PRESENT_PREFIX}{column.name}"


def conform_lines(parsed: DataFrame, contract: Contract) -> DataFrame:
    """Every line with all a load's later steps need from it: written, profiled, drift-counted.

    Grain: one row per raw line. Columns: the contract's columns in order, typed;
    ``_source_file``; per contract column its ``present_flag``; ``_rescued_data``;
    ``_unknown_columns`` (NULL when the record has none); ``_raw_record`` only where the line is
    not a JSON object (NULL on a record, so a persisted copy stays small); ``_is_record``. A line
    that is not a JSON object has NULL in every record column.
    """
    record = sf.col(RECORD)
    unknown = unknown_fields(contract)
    # A record with as many fields as it has of the contract's has no other field: only a
    # record with more pays for filtering its map (a lambda, interpreted entry by entry).
    known_fields = functools.reduce(
        Column.__add__, (has_field(column).cast("int") for column in contract.columns)
    )
    has_unknown = (sf.size(record) > known_fields) & (sf.size(unknown) > 0)
    return parsed.select(
        *(typed_value(column).alias(column.name) for column in contract.columns),
        sf.col(SOURCE_FILE),
        *(has_field(column).alias(present_flag(column)) for column in contract.columns),
        rescued_data(contract).alias(RESCUED_DATA),
        sf.when(has_unknown, unknown).alias(UNKNOWN_COLUMNS),
        sf.when(record.isNull(), sf.col(RAW_RECORD)).alias(RAW_RECORD),
        record.isNotNull().alias(IS_RECORD),
    )


def pack_lines(conformed: DataFrame, contract: Contract) -> DataFrame:
    """``conform_lines`` with the columns every line fills in one struct, ``_packed``, to persist.

    Packed: the contract's columns, ``_source_file`` and the present flags. Spark's cache
    encodes each top-level column batch by batch, gathering dictionary, run-length and min/max
    statistics first; for a load's high-cardinality strings (ids) that costs more CPU than
    parsing the JSON. A struct it stores as its bytes. The columns NULL on nearly every line
    cost next to nothing to encode and stay as they are, as does ``_is_record``.
    """
    filled = [
        *contract.column_names,
        SOURCE_FILE,
        *(present_flag(column) for column in contract.columns),
    ]
    return conformed.withColumn(PACKED, sf.struct(*filled)).drop(*filled)


def unpack_lines(packed: DataFrame) -> DataFrame:
    """``pack_lines`` undone: the columns of ``conform_lines``, in its order."""
    return packed.select(f"{PACKED}.*", "*").drop(PACKED)


def conform_to_contract(parsed: DataFrame, contract: Contract) -> DataFrame:
    """The JSON-object lines typed to the contract: ``conform_lines`` of the records alone.

    Grain: one row per record (line that is a JSON object); no key is enforced. Columns: the
    contract's columns in order, typed; ``_rescued_data``; ``_unknown_columns`` (empty map when
    none); ``_source_file``.
    """
    return conform_lines(json_objects(parsed), contract).select(
        *contract.column_names,
        RESCUED_DATA,
        sf.coalesce(sf.col(UNKNOWN_COLUMNS), sf.create_map().cast(RECORD_TYPE)).alias(
            UNKNOWN_COLUMNS
        ),
        SOURCE_FILE,
    )


def json_objects(parsed: DataFrame) -> DataFrame:
    """The lines of ``parse_json_lines`` that are JSON objects, each parsed once.

    Grain: one row per record. ``where(_record IS NOT NULL)`` would do the same, but Spark's
    optimizer pushes that filter below the parse and so parses every line twice; a record
    exploded from a one-element array (none for a bad line) is parsed once.
    """
    record = sf.col(RECORD)
    return parsed.select(
        sf.col(RAW_RECORD),
        sf.explode(sf.when(record.isNotNull(), sf.array(record))).alias(RECORD),
        sf.col(SOURCE_FILE),
    )


def not_json_objects(parsed: DataFrame) -> DataFrame:
    """The lines that fail ``record_is_json_object``: ``_raw_record``, ``_source_file``.

    Grain: one row per bad line.
    """
    return parsed.where(sf.col(RECORD).isNull()).select(RAW_RECORD, SOURCE_FILE)


@dataclass(frozen=True)
class ColumnProfile:
    """How one contract column arrived in a load."""

    name: str
    present: int
    non_null: int
    failed: int
    failed_samples: tuple[str, ...]


@dataclass(frozen=True)
class LoadProfile:
    """What one aggregation over a load found: lines, records, unknown fields, per column."""

    lines: int
    records: int
    records_with_unknown: int
    columns: tuple[ColumnProfile, ...]

    @property
    def bad_lines(self) -> int:
        """Lines that are not JSON objects."""
        return self.lines - self.records


def profile_load(parsed: DataFrame, contract: Contract) -> DataFrame:
    """Everything the contract check needs, in one aggregation (one Spark job).

    Grain: a single row; read it with ``LoadProfile`` via ``read_profile``.
    """
    return profile_conformed(conform_lines(parsed, contract), contract)


def profile_conformed(conformed: DataFrame, contract: Contract) -> DataFrame:
    """``profile_load`` from the rows of ``conform_lines``: one aggregation, nothing re-parsed.

    A raw value is non-null when it typed or failed to (its text is then in ``_rescued_data``).
    """
    measures: list[Column] = [
        sf.count(sf.lit(1)).alias("lines"),
        sf.count_if(sf.col(IS_RECORD)).alias("records"),
        sf.count(UNKNOWN_COLUMNS).alias("records_with_unknown"),
    ]
    for index, column in enumerate(contract.columns):
        typed = sf.col(column.name)
        if isinstance(column.spark_type, StringType):
            failed_text = sf.lit(None).cast(StringType())
            non_null = typed.isNotNull()
        else:
            failed_text = sf.col(RESCUED_DATA).getItem(column.name)
            non_null = typed.isNotNull() | failed_text.isNotNull()
        measures += [
            sf.count_if(sf.col(present_flag(column))).alias(f"c{index}_present"),
            sf.count_if(non_null).alias(f"c{index}_non_null"),
            sf.count(failed_text).alias(f"c{index}_failed"),
            # two distinct examples, cheaper than collecting a set over millions of rows
            sf.min(failed_text).alias(f"c{index}_sample_low"),
            sf.max(failed_text).alias(f"c{index}_sample_high"),
        ]
    return conformed.agg(*measures)


def read_profile(row: Row, contract: Contract) -> LoadProfile:
    """The one row of ``profile_load`` as a ``LoadProfile``."""
    values: dict[str, Any] = row.asDict()
    columns = []
    for index, column in enumerate(contract.columns):
        samples = [values[f"c{index}_sample_low"], values[f"c{index}_sample_high"]]
        unique = tuple(dict.fromkeys(s for s in samples if s is not None))
        columns.append(
            ColumnProfile(
                name=column.name,
                present=int(values[f"c{index}_present"]),
                non_null=int(values[f"c{index}_non_null"]),
                failed=int(values[f"c{index}_failed"]),
                failed_samples=unique[:_SAMPLES],
            )
        )
    return LoadProfile(
        lines=int(values["lines"]),
        records=int(values["records"]),
        records_with_unknown=int(values["records_with_unknown"]),
        columns=tuple(columns),
    )


def contract_violations(contract: Contract, profile: LoadProfile, load: str) -> list[str]:
    """The breaking changes in a load, one message each (empty when the load keeps the contract).

    ``load`` names where the records came from (e.g. ``raw/redshift/behavior/load_dt=...``).
    An empty load breaks nothing here: too few rows is the row-count check's business.
    """
    problems = []
    by_name = {column.name: column for column in contract.columns}
    for measured in profile.columns:
        column = by_name[measured.name]
        label = _column_label(column)
        if column.required and profile.records and not measured.present:
            problems.append(
                f"{contract.table} (contract v{contract.version}): {label} expected present "
                f"(required), but absent from all {profile.records:,} records of {load}"
            )
        elif measured.non_null and measured.failed == measured.non_null:
            samples = ", ".join(repr(sample) for sample in measured.failed_samples)
            problems.append(
                f"{contract.table} (contract v{contract.version}): {label} expected "
                f"{_expected_type(column)}, but all {measured.non_null:,} non-null values of "
                f"{load} fail to cast, e.g. {samples}"
            )
    return problems


def check_contract(contract: Contract, profile: LoadProfile, load: str) -> None:
    """Raise ``ContractViolation`` listing every breaking change in the load."""
    problems = contract_violations(contract, profile, load)
    if problems:
        raise ContractViolation("; ".join(problems))


def _column_label(column: ContractColumn) -> str:
    if column.source_name == column.name:
        return f"column {column.name}"
    return f"column {column.name} (raw field {column.source_name})"


def _expected_type(column: ContractColumn) -> str:
    if column.source_format == EPOCH_MILLIS:
        return f"{column.spark_type.simpleString()} from epoch milliseconds"
    return column.spark_type.simpleString()
