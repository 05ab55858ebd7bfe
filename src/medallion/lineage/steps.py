"""Which datasets each pipeline step reads and writes: the one place lineage declares them.

Each wrapped step function has a declaration here, keyed by its name, that turns the step's call
arguments into a ``StepLineage``: the job name, the input and output datasets and where their row
counts are in the step's result. The tables come from what the pipeline already says: the DQ
specs' ``sources`` and ``lookups`` (config/dq), the bronze registry, the raw layout.

Namespaces: a lakehouse table is ``<schema>.<table>`` in ``medallion://<storage root>``; a raw
load directory is its absolute path in ``file`` (OpenLineage's local-file convention); a source
system or warehouse is ``<system>://<host[:port]>`` from its URL (``<system>://devstack`` for the
local stand-in), never with credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from medallion.lakehouse import Lakehouse
from medallion.raw.landing import load_dir, raw_zone

FILE_NAMESPACE = "file"


@dataclass(frozen=True)
class DatasetRef:
    """One dataset of a step: OpenLineage namespace and name; ``table`` for lakehouse tables."""

    namespace: str
    name: str
    table: str | None = None


@dataclass(frozen=True)
class StepLineage:
    """What one call of a step reads and writes, and how to find its outputs' row counts."""

    job_name: str
    storage_root: Path
    inputs: tuple[DatasetRef, ...]
    outputs: tuple[DatasetRef, ...]
    lakehouse: Lakehouse | None = None
    # Output dataset name -> rows the step wrote there, from the step's return value.
    rows_written: Callable[[Any], Mapping[str, int]] = field(default=lambda result: {})


def lakehouse_namespace(storage_root: str | Path) -> str:
    """``medallion:///abs/path/to/root`` for the tables under ``storage_root``."""
    return "medallion://" + Path(storage_root).resolve().as_posix()


def table_ref(storage_root: str | Path, table: str) -> DatasetRef:
    """A lakehouse table as a dataset."""
    return DatasetRef(lakehouse_namespace(storage_root), table, table)


def raw_load_ref(
    storage_root: str | Path, source: str, entity: str | None, day: date
) -> DatasetRef:
    """A raw load directory (``raw/<source>[/<entity>]/load_dt=…``) as a file dataset."""
    path = load_dir(raw_zone(storage_root), source, entity, day).resolve()
    return DatasetRef(FILE_NAMESPACE, path.as_posix())


def system_ref(system: str, url: str, name: str) -> DatasetRef:
    """A source system's or warehouse's dataset; the URL's scheme, host and port only."""
    if not url:
        return DatasetRef(f"{system}://devstack", name)
    parts = urlsplit(url if "://" in url else f"//{url.split(',')[0]}")
    host = parts.hostname or "unknown"
    return DatasetRef(f"{system}://{host}{f':{parts.port}' if parts.port else ''}", name)


def _step_rows(result: Any) -> Mapping[str, int]:
    """A ``StepResult``: its target's rows written (and its quarantine table's, named so)."""
    rows = {result.target: result.rows_written}
    if result.rows_quarantined:
        rows[f"{result.target}_quarantine"] = result.rows_quarantined
    return rows


def _load_bronze(args: Mapping[str, Any]) -> StepLineage:
    from medallion.pipelines.bronze import bronze_table

    lakehouse: Lakehouse = args["lakehouse"]
    entry = bronze_table(args["table"])
    root = lakehouse.storage_root
    raw = raw_load_ref(root, entry.raw_source, entry.raw_entity, args["run_date"])
    return StepLineage(
        job_name=f"load_bronze.{entry.name}",
        storage_root=root,
        inputs=(raw,),
        outputs=tuple(
            table_ref(root, table)
            for table in (entry.table, entry.unknown_columns_table, entry.quarantine_table)
        ),
        lakehouse=lakehouse,
        rows_written=_step_rows,
    )


def _from_spec(step: str, args: Mapping[str, Any], *extra_outputs: str) -> StepLineage:
    """A spec-driven step (silver, gold): inputs are the spec's sources and lookup tables."""
    from medallion.quality.spec import spec_for

    lakehouse: Lakehouse = args["lakehouse"]
    spec = spec_for(args["dataset"])
    inputs = dict.fromkeys([*spec.sources, *(lookup.table for lookup in spec.lookups)])
    root = lakehouse.storage_root
    return StepLineage(
        job_name=f"{step}.{spec.dataset.split('.')[1]}",
        storage_root=root,
        inputs=tuple(table_ref(root, table) for table in inputs),
        outputs=tuple(table_ref(root, table) for table in (spec.dataset, *extra_outputs)),
        lakehouse=lakehouse,
        rows_written=_step_rows,
    )


def _update_silver(args: Mapping[str, Any]) -> StepLineage:
    from medallion.quality.spec import spec_for

    return _from_spec("update_silver", args, spec_for(args["dataset"]).quarantine_table)


def _build_gold(args: Mapping[str, Any]) -> StepLineage:
    return _from_spec("build_gold", args)


def _fx_lakehouse_step(job_name: str, source: str, target: str) -> Callable[..., StepLineage]:
    def declare(args: Mapping[str, Any]) -> StepLineage:
        lakehouse: Lakehouse = args["lakehouse"]
        root = lakehouse.storage_root
        return StepLineage(
            job_name=job_name,
            storage_root=root,
            inputs=(table_ref(root, source),),
            outputs=(table_ref(root, target),),
            lakehouse=lakehouse,
            rows_written=_step_rows,
        )

    return declare


def _load_bronze_fx_rates(args: Mapping[str, Any]) -> StepLineage:
    return _load_bronze({**args, "table": "fx_rates"})


def _ingest_fx_rates(args: Mapping[str, Any]) -> StepLineage:
    root = Path(args["storage_root"])
    raw = raw_load_ref(root, "fx_rates", None, args["run_date"])
    return StepLineage(
        job_name="ingest.fx_rates",
        storage_root=root,
        inputs=(system_ref("fx-api", args["api_url"], "rates"),),
        outputs=(raw,),
        rows_written=lambda result: {raw.name: result.rows_written},
    )


@dataclass(frozen=True)
class _Source:
    """A source an ingest step extracts from: raw layout, its URL parameter, its dataset."""

    source: str
    entity: str | None
    url_parameter: str
    system: str
    dataset: str


_INGEST_SOURCES = {
    "ingest_snowflake_orders": _Source("snowflake", "orders", "snowflake_url", "snowflake",
                                       "ORDERS"),
    "ingest_redshift_behavior": _Source("redshift", "behavior", "redshift_url", "redshift",
                                        "analytics.behavior"),
    "ingest_crm_accounts": _Source("crm", "accounts", "crm_api_url", "crm-api", "accounts"),
    "ingest_kafka_orders": _Source("kafka", "orders", "kafka_bootstrap_servers", "kafka",
                                   "orders"),
    "ingest_fx": _Source("fx_rates", None, "fx_api_url", "fx-api", "rates"),
}


def _ingest(step: str) -> Callable[[Mapping[str, Any]], StepLineage]:
    source = _INGEST_SOURCES[step]

    def declare(args: Mapping[str, Any]) -> StepLineage:
        root = Path(args["storage_root"])
        raw = raw_load_ref(root, source.source, source.entity, args["load_date"])
        dataset = args.get("topic", source.dataset) if source.system == "kafka" else source.dataset
        return StepLineage(
            job_name=f"ingest.{source.source}" + (f"_{source.entity}" if source.entity else ""),
            storage_root=root,
            inputs=(system_ref(source.system, args[source.url_parameter], dataset),),
            outputs=(raw,),
            rows_written=lambda result: {raw.name: result.rows},
        )

    return declare


def _publish_gold(args: Mapping[str, Any]) -> StepLineage:
    lakehouse: Lakehouse = args["lakehouse"]
    sink_name: str = args["sink"].name
    target = DatasetRef(f"{sink_name}://warehouse", args["target"])
    return StepLineage(
        job_name=f"publish_gold.{sink_name}",
        storage_root=lakehouse.storage_root,
        inputs=(table_ref(lakehouse.storage_root, args["table"]),),
        outputs=(target,),
        lakehouse=lakehouse,
        rows_written=lambda outcome: {target.name: outcome.result.rows_staged},
    )


def _run_breaker(args: Mapping[str, Any]) -> StepLineage:
    """A layer's DQ breaker reads the layer's tables (and its lookups' tables), writes nothing."""
    from medallion.quality.spec import load_specs

    lakehouse: Lakehouse = args["lakehouse"]
    specs = load_specs(args["layer"])
    chosen = [specs[name] for name in (args["tables"] or sorted(specs))]
    tables = dict.fromkeys([
        *(spec.dataset for spec in chosen),
        *(lookup.table for spec in chosen for lookup in spec.lookups),
    ])
    root = lakehouse.storage_root
    return StepLineage(
        job_name=f"dq_breaker.{args['layer']}",
        storage_root=root,
        inputs=tuple(table_ref(root, table) for table in tables),
        outputs=(),
        lakehouse=lakehouse,
    )


def _run_watchdog(args: Mapping[str, Any]) -> StepLineage:
    from medallion.quality.event_log import DQ_EVENT_LOG
    from medallion.quality.spec import load_specs
    from medallion.quality.watchdog import watched_specs

    lakehouse: Lakehouse = args["lakehouse"]
    root = lakehouse.storage_root
    watched = dict.fromkeys([
        *(spec.dataset for spec in watched_specs(args["datasets"])),
        *(table for layer in args["suite_layers"] for table in sorted(load_specs(layer))),
    ])
    return StepLineage(
        job_name="dq_watchdog",
        storage_root=root,
        inputs=tuple(table_ref(root, table) for table in watched),
        outputs=(table_ref(root, DQ_EVENT_LOG),),
        lakehouse=lakehouse,
        rows_written=lambda result: {DQ_EVENT_LOG: len(result.checks)},
    )


STEPS: dict[str, Callable[[Mapping[str, Any]], StepLineage]] = {
    "load_bronze": _load_bronze,
    "update_silver": _update_silver,
    "build_gold": _build_gold,
    "ingest_fx_rates": _ingest_fx_rates,
    "load_bronze_fx_rates": _load_bronze_fx_rates,
    "update_silver_fx_rates": _fx_lakehouse_step(
        "update_silver.fx_rates", "bronze.fx_rates", "silver.fx_rates"
    ),
    "build_gold_fx_daily_change": _fx_lakehouse_step(
        "build_gold.fx_daily_change", "silver.fx_rates", "gold.fx_daily_change"
    ),
    **{step: _ingest(step) for step in _INGEST_SOURCES},
    "publish_gold": _publish_gold,
    "run_breaker": _run_breaker,
    "run_watchdog": _run_watchdog,
}
"""Step function name -> its lineage declaration."""


def declare(step: str, args: Mapping[str, Any]) -> StepLineage:
    """The lineage of one call of ``step`` with its bound ``args``."""
    return STEPS[step](args)
