"""dlt-meta onboarding from our table specs: one dataflow per bronze table and per silver table.

dlt-meta (``databricks-labs-sdp-meta``) runs a Lakeflow pipeline from two dataflow-spec tables
that its onboarding step fills from an onboarding file: one row per dataflow, naming the files
that hold each table's rules (DQE), silver transformations and bronze schema. This module builds
that row set and those files from the parsed specs (``load_specs``) and says what of the specs
has no dlt-meta equivalent (``LeftOut``): listed by default, refused with ``strict``.

A bronze dataflow reads its raw folder with Auto Loader (``bronze_source``); a silver dataflow
reads its one bronze table (a "fan-out" row: bronze table named, no source of its own), applies
``select_exp`` and ``where_clause``, keeps the latest row per key (``silver_cdc_apply_changes``,
SCD type 1 by ``sequence_by``) and checks its rules (``expectations``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from medallion.lakehouse.contracts.contract import load_contract
from medallion.lakehouse.dltmeta import bronze_source
from medallion.lakehouse.dltmeta.expectations import dqe_for, rules_reading
from medallion.lakehouse.errors import ConfigError, MedallionError
from medallion.lakehouse.quality.spec import GROUP_ACTIONS, Action, TableSpec
from medallion.lakehouse.tables import SCHEMAS, split_table_name
from medallion.lakehouse.transforms.bronze import PROC_DATE

ONBOARDING_FILE = "onboarding.json"
LEFT_OUT_FILE = "left_out.json"
FILES_DIRNAME = "dlt_meta"
DEFAULT_GROUP = "medallion"
SCD_TYPE = "1"  # the latest row per key replaces the current one; no history kept
RAW_PREFIX = "raw/"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UnsupportedByDltMeta(MedallionError):
    """A spec uses a feature dlt-meta cannot express, and ``strict`` generation was asked for."""


@dataclass(frozen=True)
class DltMetaTarget:
    """Where the generated dataflows read and write, and under which dlt-meta env and group.

    ``catalog`` is the Unity Catalog catalog of the bronze and silver schemas (the bundle's
    ``catalog`` variable). ``storage_root`` holds the raw zone (``<storage_root>/raw``) and, at
    onboarding time, the generated files (``<storage_root>/dlt_meta``); by default the
    ``lakehouse.files`` volume of the catalog, as on the dev and prod targets.
    """

    catalog: str
    env: str = "dev"
    storage_root: str = ""
    group: str = DEFAULT_GROUP

    def __post_init__(self) -> None:
        for label, value in (("catalog", self.catalog), ("env", self.env), ("group", self.group)):
            if not _IDENTIFIER.match(value):
                raise ConfigError(
                    f"dlt-meta {label} {value!r}: expected a SQL identifier "
                    "(letters, digits, underscores; not starting with a digit)"
                )
        if not self.storage_root:
            object.__setattr__(self, "storage_root", f"/Volumes/{self.catalog}/lakehouse/files")
        if not self.storage_root.startswith("/"):
            raise ConfigError(
                f"dlt-meta storage root {self.storage_root!r}: expected an absolute path "
                f"(e.g. /Volumes/{self.catalog}/lakehouse/files)"
            )
        object.__setattr__(self, "storage_root", self.storage_root.rstrip("/") or "/")

    @property
    def files_root(self) -> str:
        """Where the onboarding step finds the generated files: ``<storage_root>/dlt_meta``."""
        return f"{self.storage_root.rstrip('/')}/{FILES_DIRNAME}"

    def file_path(self, relative: str) -> str:
        """A generated file as the onboarding file names it."""
        return f"{self.files_root}/{relative}"

    def raw_path(self, source: str) -> str:
        """A spec's raw source (``raw/<source>[/<entity>]``) under the storage root."""
        return f"{self.storage_root.rstrip('/')}/{source}"


@dataclass(frozen=True)
class LeftOut:
    """A feature of a spec that the generated dataflows do not carry, and why."""

    dataset: str
    feature: str
    reason: str

    def __str__(self) -> str:
        return f"{self.dataset}: {self.feature}: {self.reason}"

    def to_json(self) -> dict[str, str]:
        """The report entry written to ``left_out.json``."""
        return {"dataset": self.dataset, "feature": self.feature, "reason": self.reason}


@dataclass(frozen=True)
class Onboarding:
    """The onboarding file's rows, the files they name (relative path -> content), what is out.

    A file's content is a JSON value, or text (a bronze schema's DDL).
    """

    rows: tuple[dict[str, Any], ...]
    files: dict[str, Any] = field(default_factory=dict)
    left_out: tuple[LeftOut, ...] = ()


@dataclass
class _Dataflow:
    """One table's contribution: its onboarding row (None when left out) and its files."""

    row: dict[str, Any] | None = None
    files: dict[str, Any] = field(default_factory=dict)
    left_out: list[LeftOut] = field(default_factory=list)


def build_onboarding(
    specs: Iterable[TableSpec], target: DltMetaTarget, *, strict: bool = False
) -> Onboarding:
    """The onboarding of every bronze and silver spec, by dataset name; gold is left out.

    ``strict``: raise ``UnsupportedByDltMeta`` naming every feature left out instead of
    listing them in ``Onboarding.left_out``.
    """
    flows: list[_Dataflow] = []
    onboarded: set[str] = set()  # a silver dataflow's source must be an onboarded bronze table
    for spec in sorted(specs, key=lambda spec: (SCHEMAS.index(spec.layer), spec.dataset)):
        flow = _dataflow(spec, target, onboarded)
        if flow.row is not None:
            onboarded.add(spec.dataset)
        flows.append(flow)
    left_out = tuple(item for flow in flows for item in flow.left_out)
    if strict and left_out:
        listing = "\n".join(f"  {item}" for item in left_out)
        raise UnsupportedByDltMeta(
            f"dlt-meta onboarding (strict): expected every spec feature to map to dlt-meta, "
            f"found {len(left_out)} that do not:\n{listing}"
        )
    return Onboarding(
        rows=tuple(flow.row for flow in flows if flow.row is not None),
        files={path: content for flow in flows for path, content in flow.files.items()},
        left_out=left_out,
    )


def _dataflow(spec: TableSpec, target: DltMetaTarget, onboarded: set[str]) -> _Dataflow:
    """One table's dataflow, by layer; ``onboarded``: the tables already given one."""
    if spec.layer == "bronze":
        return _bronze_dataflow(spec, target)
    if spec.layer == "silver":
        return _silver_dataflow(spec, target, onboarded)
    reason = "dlt-meta onboards bronze and silver dataflows only; gold stays a job task"
    return _Dataflow(left_out=[LeftOut(spec.dataset, f"layer {spec.layer}", reason)])


def _bronze_dataflow(spec: TableSpec, target: DltMetaTarget) -> _Dataflow:
    """A ``cloudFiles`` dataflow from the spec's one raw folder into ``bronze.<table>``."""
    if len(spec.sources) != 1 or not spec.sources[0].startswith(RAW_PREFIX):
        found = ", ".join(spec.sources) or "none"
        reason = f"a bronze dataflow reads one raw folder (raw/...); found {found}"
        return _Dataflow(left_out=[LeftOut(spec.dataset, "sources", reason)])
    schema, table = split_table_name(spec.dataset)
    contract = load_contract(schema, table)
    flow = _Dataflow(left_out=_left_out_features(spec))
    if spec.transformations.select_exp or spec.transformations.where_clause:
        reason = "dlt-meta's bronze dataflows have no select_exp / where_clause"
        flow.left_out.append(LeftOut(spec.dataset, "transformations", reason))
    for column in bronze_source.converted_columns(contract):
        reason = (
            f"raw field {column.source_name} is kept as read (x-source-format "
            f"{column.source_format}): dlt-meta's bronze has no expression step"
        )
        flow.left_out.append(LeftOut(spec.dataset, f"contract column {column.name}", reason))
    schema_file = f"schemas/{schema}/{table}.ddl"
    flow.files[schema_file] = bronze_source.schema_ddl(contract)
    env = target.env
    flow.row = {
        "data_flow_id": spec.dataset,
        "data_flow_group": target.group,
        "source_system": spec.sources[0].removeprefix(RAW_PREFIX).split("/")[0],
        "source_format": "cloudFiles",
        "source_details": bronze_source.source_details(
            contract, target.raw_path(spec.sources[0]), target.file_path(schema_file), env
        ),
        "bronze_reader_options": dict(bronze_source.READER_OPTIONS),
        f"bronze_catalog_{env}": target.catalog,
        f"bronze_database_{env}": schema,
        "bronze_table": table,
        "bronze_partition_columns": PROC_DATE,
    }
    _add_rules(flow.row, flow.files, spec, target)
    return flow


def _silver_dataflow(spec: TableSpec, target: DltMetaTarget, onboarded: set[str]) -> _Dataflow:
    """A dataflow from the spec's one (onboarded) bronze table into ``silver.<table>``."""
    if len(spec.sources) != 1 or spec.sources[0] not in onboarded:
        found = ", ".join(spec.sources) or "none"
        reason = (
            f"a silver dataflow reads one onboarded bronze table; found {found} "
            "(several sources are unified in code, and dlt-meta 0.1.0 cannot combine its "
            "multi-source CDC flows with a table's expectations)"
        )
        return _Dataflow(left_out=[LeftOut(spec.dataset, "sources", reason)])
    source_schema, source_table = split_table_name(spec.sources[0])
    schema, table = split_table_name(spec.dataset)
    flow = _Dataflow(left_out=_left_out_features(spec))
    transformations_file = f"transformations/{schema}/{table}.json"
    flow.files[transformations_file] = [
        {
            "target_table": table,
            "select_exp": list(spec.transformations.select_exp or ("*",)),
            "where_clause": list(spec.transformations.where_clause),
        }
    ]
    env = target.env
    flow.row = {
        "data_flow_id": spec.dataset,
        "data_flow_group": target.group,
        f"bronze_catalog_{env}": target.catalog,
        f"bronze_database_{env}": source_schema,
        "bronze_table": source_table,
        f"silver_catalog_{env}": target.catalog,
        f"silver_database_{env}": schema,
        "silver_table": table,
        f"silver_transformation_json_{env}": target.file_path(transformations_file),
    }
    if spec.keys and spec.sequence_by:
        flow.row["silver_cdc_apply_changes"] = {
            "keys": list(spec.keys),
            "sequence_by": spec.sequence_by,
            "scd_type": SCD_TYPE,
        }
    elif spec.keys:
        reason = "dlt-meta keeps the latest row per key only with a sequence_by column"
        flow.left_out.append(LeftOut(spec.dataset, "keys", reason))
    _add_rules(flow.row, flow.files, spec, target)
    return flow


def _left_out_features(spec: TableSpec) -> list[LeftOut]:
    """What of a spec no dataflow carries: lookups, the rules reading them, row-count checks."""
    left_out = [
        LeftOut(
            spec.dataset,
            f"lookups.{lookup.name}",
            f"a join to {lookup.table}: a dlt-meta dataflow reads one table "
            "(select_exp / where_clause only)",
        )
        for lookup in spec.lookups
    ]
    for rule in rules_reading(spec.expectations, [lookup.name for lookup in spec.lookups]):
        left_out.append(
            LeftOut(
                spec.dataset,
                f"rule {rule.name} ({_group(rule.action)})",
                "reads a lookup column, which the dataflow does not have",
            )
        )
    for bound, value in (("min_rows", spec.checks.min_rows), ("max_rows", spec.checks.max_rows)):
        if value is not None:
            reason = "a table-level row count; dlt-meta's expectations are per row"
            left_out.append(LeftOut(spec.dataset, f"checks.{bound}", reason))
    return left_out


def _add_rules(
    row: dict[str, Any], files: dict[str, Any], spec: TableSpec, target: DltMetaTarget
) -> None:
    """The table's DQE file, and the onboarding fields naming it and the quarantine table."""
    lookups = [lookup.name for lookup in spec.lookups]
    skipped = {rule.name for rule in rules_reading(spec.expectations, lookups)}
    rules = [rule for rule in spec.expectations if rule.name not in skipped]
    dqe = dqe_for(rules)
    if not dqe:
        return
    env, layer = target.env, spec.layer
    schema, table = split_table_name(spec.dataset)
    dqe_file = f"dqe/{schema}/{table}.json"
    files[dqe_file] = dqe
    row[f"{layer}_data_quality_expectations_json_{env}"] = target.file_path(dqe_file)
    # dlt-meta 0.1.0 reads bronze_quarantine_table unguarded once a bronze row names a DQE file.
    row[f"{layer}_quarantine_table"] = ""
    if any(rule.action is Action.QUARANTINE for rule in rules):
        quarantine_schema, quarantine_table = split_table_name(spec.quarantine_table)
        row[f"{layer}_catalog_quarantine_{env}"] = target.catalog
        row[f"{layer}_database_quarantine_{env}"] = quarantine_schema
        row[f"{layer}_quarantine_table"] = quarantine_table


def _group(action: Action) -> str:
    """The spec group an action is written under (its plain form, e.g. ``expect_or_drop``)."""
    return next(group for group, grouped in GROUP_ACTIONS.items() if grouped is action)
