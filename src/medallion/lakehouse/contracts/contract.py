"""Schema contracts: JSON Schema files with ``x-`` annotations, loaded into typed ``Contract``s.

``config/schema_definitions/<layer>/<entity>_v<N>.schema.json`` holds every version and
``<entity>.schema.json`` the latest, which must equal the highest ``_v<N>``. A file is checked
when it is loaded, so a typo fails at start-up with the file, the key and what was expected.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pyspark.sql.types import (
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from medallion.lakehouse.errors import SpecError
from medallion.lakehouse.settings import config_dir

SCHEMA_DIRNAME = "schema_definitions"
SUFFIX = ".schema.json"
EPOCH_MILLIS = "epoch_millis"
SOURCE_FORMATS = (EPOCH_MILLIS,)
"""Values of ``x-source-format``: how a raw value is encoded when not as Spark casts it."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSIONED = re.compile(r"^(?P<entity>[a-z][a-z0-9_]*)_v(?P<version>[1-9][0-9]*)$")
_ATOMIC_TYPES: dict[str, DataType] = {
    "string": StringType(),
    "boolean": BooleanType(),
    "tinyint": ByteType(),
    "byte": ByteType(),
    "smallint": ShortType(),
    "short": ShortType(),
    "int": IntegerType(),
    "integer": IntegerType(),
    "bigint": LongType(),
    "long": LongType(),
    "float": FloatType(),
    "real": FloatType(),
    "double": DoubleType(),
    "date": DateType(),
    "timestamp": TimestampType(),
    "timestamp_ltz": TimestampType(),
    "timestamp_ntz": TimestampNTZType(),
    "binary": BinaryType(),
}
_DECIMAL = re.compile(
    r"^(?:decimal|dec|numeric)\s*(?:\(\s*(?P<precision>\d+)\s*(?:,\s*(?P<scale>\d+)\s*)?\))?$"
)


def parse_spark_type(ddl: str) -> DataType:
    """A Spark SQL atomic type from its DDL name (``decimal(18,2)``, ``timestamp``...).

    Parsed in Python, not by the JVM, so contracts load without a Spark session (and under
    Spark Connect). Raises ``ValueError`` for anything else.
    """
    text = ddl.strip().lower()
    if text in _ATOMIC_TYPES:
        return _ATOMIC_TYPES[text]
    match = _DECIMAL.match(text)
    if match is None:
        raise ValueError(
            f"expected a Spark SQL atomic type ({', '.join(sorted(_ATOMIC_TYPES))} or "
            f"decimal(p,s)), found {ddl!r}"
        )
    precision = int(match["precision"] or 10)
    scale = int(match["scale"] or 0)
    if not 1 <= precision <= 38 or scale > precision:
        raise ValueError(f"expected decimal(p,s) with 1 <= p <= 38 and s <= p, found {ddl!r}")
    return DecimalType(precision, scale)


@dataclass(frozen=True)
class ContractColumn:
    """One canonical column: its name, the raw field it comes from, its Spark type."""

    name: str
    source_name: str
    spark_type: DataType
    required: bool
    source_format: str | None = None


@dataclass(frozen=True)
class Contract:
    """One version of a table's schema contract, as loaded from its file."""

    layer: str
    entity: str
    version: int
    table: str
    source: str | None
    columns: tuple[ContractColumn, ...]
    primary_key: tuple[str, ...]
    path: Path

    @property
    def column_names(self) -> list[str]:
        """Canonical column names, in contract order."""
        return [column.name for column in self.columns]

    @property
    def source_names(self) -> list[str]:
        """Raw field names the contract knows, in contract order."""
        return [column.source_name for column in self.columns]

    @property
    def spark_schema(self) -> StructType:
        """The typed contract columns (every column nullable: nulls are silver's business)."""
        return StructType(
            [StructField(column.name, column.spark_type, True) for column in self.columns]
        )

    def column(self, name: str) -> ContractColumn:
        """The column called ``name``."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.table} v{self.version} has no column {name!r}")


def contracts_dir(layer: str, *, config: Path | None = None) -> Path:
    """Where a layer's contract files live."""
    _check_name("layer", layer)
    return (config if config is not None else config_dir()) / SCHEMA_DIRNAME / layer


def list_versions(layer: str, entity: str, *, config: Path | None = None) -> list[int]:
    """The versions (``_v<N>`` files) of an entity's contract, oldest first."""
    _check_name("entity", entity)
    directory = contracts_dir(layer, config=config)
    if not directory.is_dir():
        return []
    versions = []
    for path in directory.glob(f"{entity}_v*{SUFFIX}"):
        match = _VERSIONED.match(path.name.removesuffix(SUFFIX))
        if match is not None and match["entity"] == entity:
            versions.append(int(match["version"]))
    return sorted(versions)


def load_contract(
    layer: str, entity: str, version: int | None = None, *, config: Path | None = None
) -> Contract:
    """The contract of ``layer.entity`` at ``version`` (default: the latest file), validated.

    Every load also checks that the latest file equals the highest version, so a contract bumped
    in one file but not the other fails at start-up rather than validating against stale columns.
    """
    directory = contracts_dir(layer, config=config)
    versions = list_versions(layer, entity, config=config)
    latest_path = directory / f"{entity}{SUFFIX}"
    if not versions:
        raise SpecError(
            f"{directory / f'{entity}_v1{SUFFIX}'}: expected at least one versioned contract "
            f"file for {layer}.{entity}; found {_listing(directory)}"
        )
    highest_path = directory / f"{entity}_v{versions[-1]}{SUFFIX}"
    if not latest_path.is_file():
        raise SpecError(
            f"{latest_path}: expected the latest contract of {layer}.{entity} (a copy of "
            f"{highest_path.name}); the file is missing"
        )
    latest_content = _read_json(latest_path)
    if latest_content != _read_json(highest_path):
        raise SpecError(
            f"{latest_path}: expected the same content as the highest version "
            f"{highest_path.name}; the files differ"
        )
    if version is None:
        return _parse_contract(latest_content, latest_path, layer, entity, versions[-1])
    if version not in versions:
        raise SpecError(
            f"{directory / f'{entity}_v{version}{SUFFIX}'}: no such contract version of "
            f"{layer}.{entity}; expected one of {versions}"
        )
    path = directory / f"{entity}_v{version}{SUFFIX}"
    return _parse_contract(_read_json(path), path, layer, entity, version)


def _parse_contract(content: Any, path: Path, layer: str, entity: str, version: int) -> Contract:
    """Check a contract file's content and build the ``Contract``; ``SpecError`` otherwise."""
    if not isinstance(content, dict):
        raise SpecError(f"{path}: expected a JSON object, found {type(content).__name__}")
    try:
        Draft202012Validator.check_schema(content)
    except SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise SpecError(f"{path}: key {where}: not a valid JSON Schema: {error.message}") from error
    if content.get("type") != "object":
        raise SpecError(f"{path}: key type: expected 'object', found {content.get('type')!r}")
    if content.get("x-version") != version:
        raise SpecError(
            f"{path}: key x-version: expected {version} (the file's version), found "
            f"{content.get('x-version')!r}"
        )
    table = f"{layer}.{entity}"
    if content.get("title", table) != table:
        raise SpecError(f"{path}: key title: expected {table!r}, found {content.get('title')!r}")
    properties = content.get("properties")
    if not isinstance(properties, dict) or not properties:
        raise SpecError(f"{path}: key properties: expected a non-empty object of columns")
    required = _string_list(content, "required", path, default=[])
    primary_key = _string_list(content, "x-primary-key", path, default=None)
    for key, names in (("required", required), ("x-primary-key", primary_key)):
        unknown = [name for name in names if name not in properties]
        if unknown:
            raise SpecError(
                f"{path}: key {key}: expected names of properties ({', '.join(properties)}); "
                f"found {', '.join(unknown)}"
            )
    columns = tuple(
        _parse_column(name, spec, name in required, path) for name, spec in properties.items()
    )
    source_names = [column.source_name for column in columns]
    repeated = sorted({name for name in source_names if source_names.count(name) > 1})
    if repeated:
        raise SpecError(
            f"{path}: key properties: expected each raw field once; {', '.join(repeated)} "
            "is the source of more than one column"
        )
    source = content.get("x-source")
    if source is not None and not isinstance(source, str):
        raise SpecError(f"{path}: key x-source: expected a string, found {source!r}")
    return Contract(
        layer=layer,
        entity=entity,
        version=version,
        table=table,
        source=source,
        columns=columns,
        primary_key=tuple(primary_key),
        path=path,
    )


def _parse_column(name: str, spec: Any, required: bool, path: Path) -> ContractColumn:
    where = f"{path}: key properties/{name}"
    if not _NAME.match(name):
        raise SpecError(f"{where}: expected a lower snake_case column name")
    if not isinstance(spec, dict):
        raise SpecError(f"{where}: expected an object, found {spec!r}")
    ddl = spec.get("x-spark-type")
    if not isinstance(ddl, str):
        raise SpecError(f"{where}/x-spark-type: expected a Spark SQL type, found {ddl!r}")
    try:
        spark_type = parse_spark_type(ddl)
    except ValueError as error:
        raise SpecError(f"{where}/x-spark-type: {error}") from error
    source_name = spec.get("x-source-name", name)
    if not isinstance(source_name, str) or not source_name:
        raise SpecError(f"{where}/x-source-name: expected a field name, found {source_name!r}")
    source_format = spec.get("x-source-format")
    if source_format is not None and source_format not in SOURCE_FORMATS:
        raise SpecError(
            f"{where}/x-source-format: expected one of {list(SOURCE_FORMATS)}, found "
            f"{source_format!r}"
        )
    if source_format == EPOCH_MILLIS and not isinstance(spark_type, TimestampType):
        raise SpecError(
            f"{where}/x-source-format: {EPOCH_MILLIS} needs x-spark-type 'timestamp', found {ddl!r}"
        )
    return ContractColumn(name, source_name, spark_type, required, source_format)


def _string_list(
    content: dict[str, Any], key: str, path: Path, *, default: list[str] | None
) -> list[str]:
    value = content.get(key, default)
    if not isinstance(value, list) or (not value and default is None):
        raise SpecError(f"{path}: key {key}: expected a non-empty list of column names")
    if not all(isinstance(item, str) for item in value):
        raise SpecError(f"{path}: key {key}: expected column names (strings), found {value!r}")
    return list(value)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SpecError(f"{path}: expected a JSON contract file; {error}") from error


def _check_name(label: str, name: str) -> None:
    if not _NAME.match(name):
        raise SpecError(f"{label} {name!r}: expected lower snake_case, e.g. 'customer_behavior'")


def _listing(directory: Path) -> str:
    if not directory.is_dir():
        return "no such directory"
    names = sorted(path.name for path in directory.iterdir())
    return ", ".join(names) if names else "an empty directory"
