"""gold → warehouses: publish one gold table's current Delta version, then reconcile.

The snapshot is read at one Delta version (``VERSION AS OF``), so what is published, recorded
in the warehouse's publish log and reconciled is the same data even while gold is rewritten.
The sink mirrors it in one transaction (``medallion.lakehouse.serving``); a version the warehouse
already holds is not published again. Reconciliation then compares gold's figures (rows, distinct
keys, column sums) with the warehouse table's, also after a skipped publish: a mismatch fails with
both figures, whatever caused it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    TimestampNTZType,
    TimestampType,
)

from medallion.lakehouse.environment import WAREHOUSE_ENDPOINTS, Environment
from medallion.lakehouse.errors import ConfigError, ReconciliationMismatch
from medallion.lakehouse.lineage import lineage_job
from medallion.lakehouse.lineage.steps import DatasetRef, StepLineage, table_ref
from medallion.lakehouse.pipelines.ingest import redshift_settings, snowflake_settings
from medallion.lakehouse.quality.spec import load_specs
from medallion.lakehouse.serving import (
    Figures,
    GoldColumn,
    GoldSnapshot,
    PublishResult,
    WarehouseSink,
)
from medallion.lakehouse.serving.redshift import RedshiftSink
from medallion.lakehouse.serving.redshift_sessions import ParquetStaging
from medallion.lakehouse.serving.snowflake import SnowflakeSink
from medallion.lakehouse.tables import Lakehouse

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

BATCH_ROWS = 10_000


@dataclass(frozen=True)
class Published:
    """A gold table that is served: its key and the columns reconciliation sums (its spec's
    ``keys`` and ``publish.reconcile``)."""

    keys: tuple[str, ...]
    sum_columns: tuple[str, ...]


@dataclass(frozen=True)
class PublishOutcome:
    """A publish and its reconciliation: the sink's result and both sides' figures."""

    result: PublishResult
    gold: Figures
    warehouse: Figures
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Staged rows per second of the whole publish (0 when skipped)."""
        return self.result.rows_staged / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what was published and both sides' figures (sums as decimal text)."""
        result = self.result
        return {
            "warehouse": result.warehouse,
            "target": result.target,
            "gold_table": result.gold_table,
            "gold_version": result.version,
            "skipped": result.skipped,
            "rows_staged": result.rows_staged,
            "inserted": result.inserted,
            "updated": result.updated,
            "deleted": result.deleted,
            "added_columns": list(result.added_columns),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "gold_figures": _figures_json(self.gold),
            "warehouse_figures": _figures_json(self.warehouse),
        }


def _figures_json(figures: Figures) -> dict[str, Any]:
    return {
        "rows": figures.rows,
        "distinct_keys": figures.distinct_keys,
        "sums": {name: str(value) for name, value in figures.sums.items()},
    }


def published(table: str) -> Published:
    """How ``table`` is served, from its spec's ``publish`` section; ``ConfigError`` naming the
    served tables otherwise."""
    specs = load_specs("gold")
    spec = specs.get(table)
    if spec is None or spec.publish is None:
        served = sorted(name for name, served in specs.items() if served.publish is not None)
        raise ConfigError(f"gold table {table!r} is not published; expected one of {served}")
    return Published(keys=spec.keys, sum_columns=spec.publish.reconcile)


def gold_snapshot(lakehouse: Lakehouse, table: str, version: int | None = None) -> GoldSnapshot:
    """``table`` at ``version`` (default: the latest) as a ``GoldSnapshot`` of Arrow batches."""
    served = published(table)
    at = lakehouse.version(table) if version is None else version
    frame = lakehouse.read(table, version=at)
    columns = tuple(
        GoldColumn(field.name, logical_type(field.dataType, table, field.name))
        for field in frame.schema
    )

    def batches() -> Iterator[pa.RecordBatch]:
        yield from frame.toArrow().to_batches(max_chunksize=BATCH_ROWS)

    return GoldSnapshot(
        table=table, version=at, keys=served.keys, columns=columns, batches=batches
    )


def logical_type(data_type: DataType, table: str, column: str) -> str:
    """The serving layer's logical type of a Spark type (see ``GoldColumn``)."""
    if isinstance(data_type, StringType):
        return "string"
    if isinstance(data_type, LongType | IntegerType | ShortType):
        return "bigint"
    if isinstance(data_type, DecimalType):
        return f"decimal({data_type.precision},{data_type.scale})"
    if isinstance(data_type, TimestampType | TimestampNTZType):
        return "timestamp"
    if isinstance(data_type, DateType):
        return "date"
    if isinstance(data_type, DoubleType | FloatType):
        return "double"
    if isinstance(data_type, BooleanType):
        return "boolean"
    raise ConfigError(
        f"{table}.{column}: type {data_type.simpleString()} cannot be served; expected string, "
        "integer, decimal, timestamp, date, double or boolean"
    )


def gold_figures(frame: DataFrame, key: str, sum_columns: Sequence[str]) -> Figures:
    """Rows, distinct keys and exact sums of ``frame``, in one aggregation."""
    row = frame.agg(
        sf.count(sf.lit(1)).alias("rows"),
        sf.count_distinct(sf.col(key)).alias("keys"),
        *[sf.sum(sf.col(name)).alias(f"sum_{i}") for i, name in enumerate(sum_columns)],
    ).first()
    if row is None:
        return Figures(0, 0, {name: Decimal(0) for name in sum_columns})
    return Figures(
        rows=int(row["rows"]),
        distinct_keys=int(row["keys"]),
        sums={name: Decimal(row[f"sum_{i}"] or 0) for i, name in enumerate(sum_columns)},
    )


def publish_gold_lineage(lakehouse: Lakehouse, sink: WarehouseSink, table: str, target: str,
                         **_: object) -> StepLineage:
    """Publishing reads a gold table and writes the warehouse's table."""
    written = DatasetRef(f"{sink.name}://warehouse", target)
    return StepLineage(
        job_name=f"publish_gold.{sink.name}",
        storage_root=lakehouse.storage_root,
        inputs=(table_ref(lakehouse.storage_root, table),),
        outputs=(written,),
        lakehouse=lakehouse,
        rows_written=lambda outcome: {written.name: outcome.result.rows_staged},
    )


@lineage_job(publish_gold_lineage)
def publish_gold(
    lakehouse: Lakehouse, sink: WarehouseSink, table: str, target: str
) -> PublishOutcome:
    """Publish ``table``'s latest version to ``target`` in ``sink``, then reconcile.

    Raises ``ReconciliationMismatch`` naming both sides' figures when they differ.
    """
    started = time.monotonic()
    served = published(table)
    snapshot = gold_snapshot(lakehouse, table)
    result = sink.publish(snapshot, target)
    ours = gold_figures(
        lakehouse.read(table, version=snapshot.version), served.keys[0], served.sum_columns
    )
    theirs = sink.figures(target, served.keys[0], served.sum_columns)
    seconds = time.monotonic() - started
    if ours != theirs:
        raise ReconciliationMismatch(
            f"{sink.name} {target}: expected the figures of {table} version {snapshot.version} "
            f"({describe(ours)}), found {describe(theirs)}"
        )
    log.info(
        "%s %s: %s version %d %s (%s)",
        sink.name,
        target,
        table,
        snapshot.version,
        "already published" if result.skipped else "published",
        describe(ours),
    )
    return PublishOutcome(result, ours, theirs, seconds)


WAREHOUSES = tuple(WAREHOUSE_ENDPOINTS)


def warehouse_sink(warehouse: str, environment: Environment) -> WarehouseSink:
    """The sink of ``warehouse`` at the environment's endpoint for it (``<warehouse>_url``).

    Credentials come from the environment's secret provider (``snowflake-*``, ``redshift-*``; on
    Redshift also ``redshift-iam-role`` for COPY, staging files under
    ``<storage_root>/_system/publish``).
    """
    if warehouse == "snowflake":
        return SnowflakeSink(snowflake_settings(environment))
    if warehouse != "redshift":
        raise ConfigError(f"warehouse {warehouse!r}: expected one of {', '.join(WAREHOUSES)}")
    settings = redshift_settings(environment)
    if not settings.is_redshift:
        return RedshiftSink.postgres(settings)
    return RedshiftSink.redshift(
        settings,
        iam_role=str(environment.secrets.get("redshift-iam-role")),
        staging_area=ParquetStaging(f"{environment.storage_root}/_system/publish"),
    )


def describe(figures: Figures) -> str:
    """``rows 1,000, distinct keys 1,000, sum(lifetime_value_usd) 12,345.67``."""
    parts = [f"rows {figures.rows:,}", f"distinct keys {figures.distinct_keys:,}"]
    parts += [f"sum({name}) {value:,}" for name, value in figures.sums.items()]
    return ", ".join(parts)
