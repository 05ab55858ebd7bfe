"""Raw -> bronze, the same for every source: driven by the table's schema contract.

A load's lines are parsed once (``parse_json_lines``) and conformed once (``conform_lines``), and
make three frames, all partitioned by ``_proc_date``: the bronze table (one row per JSON-object
line, contract-typed), its ``_unknown_columns`` side table (fields the contract does not know,
with the row's key) and its ``_quarantine`` table (lines that are not JSON objects). Each has a
``*_from_conformed`` function, for a step that persists the conformed lines and derives all three
from them, and a ``to_*`` function of the parsed lines.
"""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import (
    ArrayType,
    DateType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from medallion.lakehouse.contracts.conform import (
    IS_RECORD,
    JSON_OBJECT_PREDICATE,
    JSON_OBJECT_RULE,
    RAW_RECORD,
    RECORD_TYPE,
    RESCUED_DATA,
    SOURCE_FILE,
    UNKNOWN_COLUMNS,
    conform_lines,
    json_objects,
    not_json_objects,
)
from medallion.lakehouse.contracts.contract import Contract

INGEST_TS = "_ingest_ts"
RUN_ID = "_run_id"
PROC_DATE = "_proc_date"
ERRORS = "_errors"
PARTITION_COLUMNS = (PROC_DATE,)
ERROR_TYPE = ArrayType(
    StructType([StructField("name", StringType()), StructField("expression", StringType())])
)
METADATA_SCHEMA = StructType(
    [
        StructField(RESCUED_DATA, RECORD_TYPE),
        StructField(SOURCE_FILE, StringType()),
        StructField(INGEST_TS, TimestampType()),
        StructField(RUN_ID, StringType()),
        StructField(PROC_DATE, DateType()),
    ]
)
"""The columns every bronze table ends with, after the contract's columns."""
QUARANTINE_SCHEMA = StructType(
    [
        StructField(RAW_RECORD, StringType()),
        StructField(ERRORS, ERROR_TYPE),
        StructField(SOURCE_FILE, StringType()),
        StructField(PROC_DATE, DateType()),
        StructField(RUN_ID, StringType()),
    ]
)


def bronze_schema(contract: Contract) -> StructType:
    """A bronze table's schema: the contract's columns, then the metadata columns."""
    return StructType([*contract.spark_schema.fields, *METADATA_SCHEMA.fields])


def unknown_columns_schema(contract: Contract) -> StructType:
    """The ``<table>_unknown_columns`` schema: key columns, the unknown fields, provenance."""
    return StructType(
        [
            *(contract.spark_schema[name] for name in contract.primary_key),
            StructField(UNKNOWN_COLUMNS, RECORD_TYPE),
            StructField(SOURCE_FILE, StringType()),
            StructField(PROC_DATE, DateType()),
            StructField(RUN_ID, StringType()),
        ]
    )


def to_bronze(
    parsed: DataFrame, contract: Contract, *, ingest_ts: datetime, proc_date: date, run_id: str
) -> DataFrame:
    """``bronze_from_conformed`` of the parsed lines (their JSON objects, each parsed once)."""
    return bronze_from_conformed(
        conform_lines(json_objects(parsed), contract),
        contract,
        ingest_ts=ingest_ts,
        proc_date=proc_date,
        run_id=run_id,
    )


def bronze_from_conformed(
    conformed: DataFrame, contract: Contract, *, ingest_ts: datetime, proc_date: date, run_id: str
) -> DataFrame:
    """The bronze rows of a load: contract columns typed, unknown fields left out, metadata added.

    ``conformed``: the load's ``conform_lines``. Grain: one row per raw line that is a JSON
    object (duplicates and bad values kept; bad values NULL with their text in
    ``_rescued_data``). Key: the contract's ``primary_key``, not enforced.
    """
    return conformed.where(sf.col(IS_RECORD)).select(
        *contract.column_names,
        RESCUED_DATA,
        sf.col(SOURCE_FILE).cast(StringType()).alias(SOURCE_FILE),
        sf.lit(ingest_ts).cast(TimestampType()).alias(INGEST_TS),
        sf.lit(run_id).cast(StringType()).alias(RUN_ID),
        sf.lit(proc_date).cast(DateType()).alias(PROC_DATE),
    )


def to_unknown_columns(
    parsed: DataFrame, contract: Contract, *, proc_date: date, run_id: str
) -> DataFrame:
    """``unknown_columns_from_conformed`` of the parsed lines."""
    return unknown_columns_from_conformed(
        conform_lines(json_objects(parsed), contract), contract, proc_date=proc_date, run_id=run_id
    )


def unknown_columns_from_conformed(
    conformed: DataFrame, contract: Contract, *, proc_date: date, run_id: str
) -> DataFrame:
    """The fields the contract does not know, kept with the row's key.

    ``conformed``: the load's ``conform_lines``. Grain: one row per record that carried at least
    one non-null unknown field. Key: the contract's ``primary_key`` (as typed in bronze) within
    ``_proc_date``, not enforced.
    """
    return conformed.where(sf.size(UNKNOWN_COLUMNS) > 0).select(
        *contract.primary_key,
        UNKNOWN_COLUMNS,
        SOURCE_FILE,
        sf.lit(proc_date).cast(DateType()).alias(PROC_DATE),
        sf.lit(run_id).cast(StringType()).alias(RUN_ID),
    )


def to_quarantine(parsed: DataFrame, *, proc_date: date, run_id: str) -> DataFrame:
    """``quarantine_from_conformed`` of the parsed lines (no contract needed)."""
    return _quarantine(not_json_objects(parsed), proc_date=proc_date, run_id=run_id)


def quarantine_from_conformed(conformed: DataFrame, *, proc_date: date, run_id: str) -> DataFrame:
    """The lines that are not JSON objects, whole, with the rule they failed.

    ``conformed``: the load's ``conform_lines``. Grain: one row per bad raw line. No key (the
    line's text is all there is).
    """
    bad_lines = conformed.where(~sf.col(IS_RECORD)).select(RAW_RECORD, SOURCE_FILE)
    return _quarantine(bad_lines, proc_date=proc_date, run_id=run_id)


def _quarantine(bad_lines: DataFrame, *, proc_date: date, run_id: str) -> DataFrame:
    """``_raw_record``, ``_source_file`` of the bad lines -> the quarantine table's columns."""
    error = sf.struct(
        sf.lit(JSON_OBJECT_RULE).alias("name"), sf.lit(JSON_OBJECT_PREDICATE).alias("expression")
    )
    return bad_lines.select(
        RAW_RECORD,
        sf.array(error).cast(ERROR_TYPE).alias(ERRORS),
        SOURCE_FILE,
        sf.lit(proc_date).cast(DateType()).alias(PROC_DATE),
        sf.lit(run_id).cast(StringType()).alias(RUN_ID),
    )
