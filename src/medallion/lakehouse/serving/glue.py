"""Registering gold's Delta tables in an AWS Glue Data Catalog, so Athena can query them.

Athena reads a Delta table natively when the table is registered in Glue with its location and
``table_type = DELTA`` (Athena user guide, "Get started with Delta Lake tables"); it takes the
data files and the schema from the Delta log, so Glue only has to point at the table. We still
register the columns, because Lake Formation, views and row/column filters need the Glue schema
to match the log ("Synchronize Delta Lake metadata"), and because the catalog is where analysts
look columns up. That page also names ``spark.sql.sources.provider = delta`` and a SerDe
parameter ``path`` = the location, which Spark engines reading through Glue (EMR, Glue jobs,
Athena for Spark) use to recognise the table as Delta.

The columns come from the Delta log itself, without Spark (``read_delta_schema``): the latest
``metaData`` action's ``schemaString``, with its Spark types mapped to Glue/Hive types.

Registration is idempotent: the database is created when missing, the table created when missing,
updated when its columns, location, description or Delta parameters differ, and left alone
(no new Glue table version) when they do not. Credentials come from boto3's provider chain
(environment, profile, instance role); nothing here reads, logs or echoes them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from medallion.lakehouse.errors import (
    ConfigError,
    DeltaLogUnreadable,
    PublishError,
    SecretNotFound,
    WarehouseUnavailable,
)
from medallion.lakehouse.serving import GoldColumn
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import split_table_name, table_path

log = logging.getLogger(__name__)

DELTA_TABLE_PARAMETERS: Mapping[str, str] = {
    "table_type": "DELTA",  # what Athena's CREATE EXTERNAL TABLE ... TBLPROPERTIES writes
    "spark.sql.sources.provider": "delta",  # what Spark engines reading through Glue look for
}
"""Table parameters that mark a Glue table as a Delta Lake table for Athena and Spark."""

Registration = Literal["created", "updated", "unchanged"]

_GLUE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")  # Glue wants lower case for Hive compatibility
_COMMIT = re.compile(r"^(\d{20})\.json$")
# Classic (NNN.checkpoint.parquet), multi-part (NNN.checkpoint.PART.PARTS.parquet) and
# V2 top-level (NNN.checkpoint.UUID.json|parquet) checkpoints.
_CHECKPOINT = re.compile(
    r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10})|\.[0-9a-f-]{36})?\.(parquet|json)$"
)
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_GLUE_PRIMITIVES = {
    "string": "string",
    "long": "bigint",
    "integer": "int",
    "short": "smallint",
    "byte": "tinyint",
    "double": "double",
    "float": "float",
    "boolean": "boolean",
    "binary": "binary",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp_ntz": "timestamp",  # Athena reads Delta's timestampNtz as a timestamp
}
# Glue answers these when it is overloaded or failing, even after botocore's retries.
_UNAVAILABLE_CODES = frozenset(
    {"InternalServiceException", "ServiceUnavailableException", "ThrottlingException"}
)


@dataclass(frozen=True)
class DeltaTableSchema:
    """What a Delta table's latest ``metaData`` action says about its columns."""

    version: int  # the latest version in the log (the schema is the one in force there)
    columns: tuple[GoldColumn, ...]  # Glue/Hive types, in the table's column order
    partition_columns: tuple[str, ...]
    description: str


def glue_client(
    region_name: str,
    endpoint_url: str | None = None,
    *,
    max_attempts: int = 3,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> Any:  # boto3 ships no type stubs; the client is a botocore ``Glue`` client
    """A Glue client with bounded retries and timeouts; credentials from boto3's provider chain.

    ``endpoint_url`` points it at a stand-in (moto) locally; None means the AWS regional endpoint.
    """
    config = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    return boto3.client("glue", region_name=region_name, endpoint_url=endpoint_url, config=config)


def read_delta_schema(table_path: str | Path) -> DeltaTableSchema:
    """The columns of a local Delta table, from the latest ``metaData`` action in its log.

    Reads the JSON commits ``_delta_log/<version>.json`` newer than the latest checkpoint, newest
    first, and falls back to that checkpoint (classic, multi-part, or V2 top-level file; Parquet or
    JSON) when none of them changed the metadata. Log compaction files and V2 sidecars are not
    needed for the metadata and are ignored.
    """
    log_dir = Path(table_path) / "_delta_log"
    if not log_dir.is_dir():
        raise DeltaLogUnreadable(f"{log_dir}: expected a Delta log directory, found none")
    commits: dict[int, Path] = {}
    checkpoints: dict[int, list[Path]] = {}
    for entry in log_dir.iterdir():
        if commit := _COMMIT.match(entry.name):
            commits[int(commit.group(1))] = entry
        elif checkpoint := _CHECKPOINT.match(entry.name):
            checkpoints.setdefault(int(checkpoint.group(1)), []).append(entry)
    complete = {
        version: files for version, files in checkpoints.items() if _checkpoint_complete(files)
    }
    if not commits and not complete:
        raise DeltaLogUnreadable(f"{log_dir}: expected commit or checkpoint files, found none")
    latest = max([*commits, *complete])
    checkpoint_version = max(complete, default=-1)
    for version in sorted((v for v in commits if v > checkpoint_version), reverse=True):
        metadata = _metadata_in_actions(_json_actions(commits[version]))
        if metadata is not None:
            return _schema_from_metadata(metadata, latest, commits[version])
    if checkpoint_version >= 0:
        files = complete[checkpoint_version]
        metadata = _metadata_in_checkpoint(files)
        if metadata is not None:
            return _schema_from_metadata(metadata, latest, files[0])
    raise DeltaLogUnreadable(
        f"{log_dir}: expected a metaData action in a commit or checkpoint, found none "
        f"(latest version {latest}; were early commits removed without a checkpoint?)"
    )


def glue_type(spark_type: str | Mapping[str, Any]) -> str:
    """The Glue/Hive type of a Delta schema type: ``"long"`` -> ``"bigint"``, structs nested."""
    if isinstance(spark_type, str):
        if spark_type in _GLUE_PRIMITIVES:
            return _GLUE_PRIMITIVES[spark_type]
        if decimal := _DECIMAL.match(spark_type):
            return f"decimal({decimal.group(1)},{decimal.group(2)})"
        raise DeltaLogUnreadable(
            f"Delta type {spark_type!r}: expected one Glue can hold (string, long, integer, "
            "short, byte, double, float, boolean, binary, date, timestamp, timestamp_ntz, "
            "decimal(p,s), array, map, struct)"
        )
    kind = spark_type.get("type")
    if kind == "array":
        return f"array<{glue_type(spark_type['elementType'])}>"
    if kind == "map":
        return f"map<{glue_type(spark_type['keyType'])},{glue_type(spark_type['valueType'])}>"
    if kind == "struct":
        fields = ",".join(
            f"{field['name']}:{glue_type(field['type'])}" for field in spark_type["fields"]
        )
        return f"struct<{fields}>"
    raise DeltaLogUnreadable(f"Delta type {dict(spark_type)!r}: expected array, map or struct")


def register_in_glue(
    client: Any,
    database: str,
    table_name: str,
    location: str,
    columns: Sequence[GoldColumn],
    *,
    description: str = "",
) -> Registration:
    """Create or update ``database.table_name`` in Glue as an external Delta table at ``location``.

    Creates the database when missing. Returns what it did: ``created``, ``updated`` (columns,
    location, description or Delta parameters changed; other parameters on the table are kept)
    or ``unchanged``. Raises ``WarehouseUnavailable`` when Glue cannot be reached after the
    client's retries, ``SecretNotFound`` when boto3 finds no credentials, ``PublishError`` when
    Glue refuses a request.
    """
    _check_glue_name("database", database)
    _check_glue_name("table", table_name)
    if not columns:
        raise ConfigError(f"glue table {database}.{table_name}: expected columns, found none")
    where = f"glue table {database}.{table_name} at {_endpoint(client)}"
    _ensure_database(client, database, where)
    existing = _existing_table(client, database, table_name, where)
    table_input = _table_input(table_name, location, columns, description, existing)
    if existing is None:
        try:
            _call(client.create_table, where, DatabaseName=database, TableInput=table_input)
            log.info("glue: created %s.%s at %s", database, table_name, location)
            return "created"
        except _AlreadyExists:  # registered concurrently since we looked: update it instead
            existing = _existing_table(client, database, table_name, where)
            table_input = _table_input(table_name, location, columns, description, existing)
    if existing is not None and _registered_as(existing) == _registered_as(table_input):
        return "unchanged"
    _call(client.update_table, where, DatabaseName=database, TableInput=table_input)
    log.info("glue: updated %s.%s at %s", database, table_name, location)
    return "updated"


def register_delta_table(
    client: Any,
    database: str,
    table_name: str,
    table_path: str | Path,
    *,
    location: str | None = None,
    description: str | None = None,
) -> Registration:
    """Register the Delta table at ``table_path`` in Glue with the columns its log declares.

    ``location`` is what Glue records (``s3://...`` on AWS); it defaults to the local absolute
    path. ``description`` defaults to the Delta table's own description.
    """
    schema = read_delta_schema(table_path)
    return register_in_glue(
        client,
        database,
        table_name,
        location if location is not None else str(Path(table_path).resolve()),
        schema.columns,
        description=schema.description if description is None else description,
    )


def register_tables(
    client: Any,
    database: str,
    storage_root: StorageRoot,
    tables: Sequence[str],
    *,
    location_root: str = "",
) -> dict[str, Registration]:
    """Register each lakehouse table (``schema.name``) as ``database.name`` in Glue.

    The Delta files are read under ``storage_root``; Glue records them under ``location_root``
    (the storage root's ``s3://`` URL on AWS, where Athena reads), or at their local path when
    it is empty. Returns what registration did per table, in ``tables``' order.
    """
    done: dict[str, Registration] = {}
    for table in tables:
        schema, name = split_table_name(table)
        location = f"{location_root.rstrip('/')}/{schema}/{name}" if location_root else None
        done[table] = register_delta_table(
            client, database, name, table_path(storage_root, table), location=location
        )
    return done


class _AlreadyExists(PublishError):
    """Glue answered AlreadyExistsException (a concurrent registration won the race)."""


class _NotFound(PublishError):
    """Glue answered EntityNotFoundException (expected when looking up; an error elsewhere)."""


def _checkpoint_complete(files: Sequence[Path]) -> bool:
    """True when the files hold a whole checkpoint: a single file, or every part of a multi-part."""
    parts: dict[int, set[int]] = {}
    for path in files:
        match = _CHECKPOINT.match(path.name)
        if match is None:
            continue
        if match.group(2) is None:
            return True
        parts.setdefault(int(match.group(3)), set()).add(int(match.group(2)))
    return any(found == set(range(1, total + 1)) for total, found in parts.items())


def _json_actions(path: Path) -> Iterable[dict[str, Any]]:
    """The actions of a JSON commit or checkpoint, one per non-empty line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DeltaLogUnreadable(f"{path}: expected a readable Delta log file ({error})") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            action = json.loads(line)
        except json.JSONDecodeError as error:
            raise DeltaLogUnreadable(
                f"{path}, line {number}: expected one JSON action, found {line[:80]!r}"
            ) from error
        if isinstance(action, dict):
            yield action


def _metadata_in_actions(actions: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The last ``metaData`` action among ``actions``; None when there is none."""
    found = None
    for action in actions:
        if isinstance(action.get("metaData"), dict):
            found = action["metaData"]
    return found


def _metadata_in_checkpoint(files: Sequence[Path]) -> dict[str, Any] | None:
    """The ``metaData`` action of a checkpoint, read with pyarrow for Parquet files."""
    for path in sorted(files):
        if path.suffix == ".json":
            metadata = _metadata_in_actions(_json_actions(path))
        else:
            metadata = _metadata_in_parquet(path)
        if metadata is not None:
            return metadata
    return None


def _metadata_in_parquet(path: Path) -> dict[str, Any] | None:
    """The non-null ``metaData`` row of a Parquet checkpoint file, as a dict."""
    import pyarrow.parquet as pq  # pyarrow comes with pyspark; imported only for checkpoints

    try:
        if "metaData" not in pq.read_schema(path).names:
            return None
        rows = pq.read_table(path, columns=["metaData"]).column("metaData").to_pylist()
    except (OSError, ValueError) as error:
        raise DeltaLogUnreadable(f"{path}: expected a Parquet checkpoint ({error})") from error
    return next((row for row in rows if row is not None), None)


def _schema_from_metadata(
    metadata: Mapping[str, Any], version: int, source: Path
) -> DeltaTableSchema:
    """The table schema a ``metaData`` action declares, with Glue types."""
    try:
        schema = json.loads(metadata["schemaString"])
        fields = schema["fields"]
        columns = tuple(GoldColumn(field["name"], glue_type(field["type"])) for field in fields)
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise DeltaLogUnreadable(
            f"{source}: expected a metaData action whose schemaString is a Spark struct JSON "
            f"({type(error).__name__}: {error})"
        ) from error
    return DeltaTableSchema(
        version=version,
        columns=columns,
        partition_columns=tuple(metadata.get("partitionColumns") or ()),
        description=metadata.get("description") or "",
    )


def _table_input(
    table_name: str,
    location: str,
    columns: Sequence[GoldColumn],
    description: str,
    existing: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The Glue ``TableInput`` for an external Delta table, keeping parameters others set."""
    parameters = dict(existing.get("Parameters", {})) if existing else {}
    parameters.update(DELTA_TABLE_PARAMETERS)
    table_input: dict[str, Any] = {
        "Name": table_name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        # Athena wants an explicit empty list when there are no partition keys (Glue Table API);
        # a Delta table's partitioning lives in its log, which Athena reads.
        "PartitionKeys": [],
        "StorageDescriptor": {
            "Columns": [{"Name": column.name, "Type": column.type} for column in columns],
            "Location": location,
            "SerdeInfo": {"Parameters": {"path": location}},
        },
    }
    if description:  # an empty Description is left out rather than stored as ""
        table_input["Description"] = description
    return table_input


def _registered_as(table: Mapping[str, Any]) -> dict[str, Any]:
    """The fields ``_table_input`` sets, normalised, of a Glue table or a ``TableInput``."""
    storage = table.get("StorageDescriptor", {})
    return {
        "Name": table.get("Name"),
        "Description": table.get("Description", ""),
        "TableType": table.get("TableType"),
        "Parameters": table.get("Parameters", {}),
        "PartitionKeys": table.get("PartitionKeys", []),
        "StorageDescriptor": {
            "Columns": [
                {"Name": column["Name"], "Type": column["Type"]}
                for column in storage.get("Columns", [])
            ],
            "Location": storage.get("Location"),
            "SerdeInfo": {"Parameters": storage.get("SerdeInfo", {}).get("Parameters", {})},
        },
    }


def _ensure_database(client: Any, database: str, where: str) -> None:
    """Create the Glue database when missing; reads first, since creating needs more rights."""
    try:
        _call(client.get_database, where, Name=database)
        return
    except _NotFound:
        pass
    try:
        _call(client.create_database, where, DatabaseInput={"Name": database})
        log.info("glue: created database %s", database)
    except _AlreadyExists:
        pass


def _existing_table(
    client: Any, database: str, table_name: str, where: str
) -> dict[str, Any] | None:
    """The table as Glue holds it; None when it is not registered."""
    try:
        response = _call(client.get_table, where, DatabaseName=database, Name=table_name)
    except _NotFound:
        return None
    table: dict[str, Any] = response["Table"]
    return table


def _call(operation: Any, where: str, **kwargs: Any) -> dict[str, Any]:
    """One Glue call, with botocore's failures turned into the package's named errors."""
    name = getattr(operation, "__name__", "glue call")
    try:
        response: dict[str, Any] = operation(**kwargs)
    except (BotoConnectionError, HTTPClientError) as error:
        raise WarehouseUnavailable(
            f"{where}: expected Glue to answer {name}, could not reach it after retries "
            f"({type(error).__name__})"
        ) from error
    except NoCredentialsError as error:
        raise SecretNotFound(
            f"{where}: expected AWS credentials from boto3's provider chain (environment, "
            "shared config, instance role), found none"
        ) from error
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        refused = f"{where}: expected Glue to accept {name}, it refused: {code} {message}"
        if code == "EntityNotFoundException":
            raise _NotFound(refused) from error
        if code == "AlreadyExistsException":
            raise _AlreadyExists(refused) from error
        if code in _UNAVAILABLE_CODES:
            raise WarehouseUnavailable(
                f"{where}: expected Glue to answer {name}, it answered {code} after retries"
            ) from error
        raise PublishError(refused) from error
    return response


def _check_glue_name(kind: str, name: str) -> None:
    """Reject a database or table name Glue would not keep as given (Hive wants lower case)."""
    if not _GLUE_NAME.match(name):
        raise ConfigError(f"glue {kind} name {name!r}: expected lower snake_case, e.g. 'gold'")


def _endpoint(client: Any) -> str:
    """The endpoint a client talks to, for error messages (never its credentials)."""
    return str(getattr(getattr(client, "meta", None), "endpoint_url", "glue"))
