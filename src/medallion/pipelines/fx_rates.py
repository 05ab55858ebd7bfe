"""The FX-rates slice, one function per notebook step: API -> raw -> bronze -> silver -> gold.

Re-running any step for the same date leaves every table with identical contents: the raw landing
is a no-op for identical content, bronze (the generic contract-driven step of
``pipelines.bronze``) replaces exactly that ``_proc_date``, silver MERGEs on (rate_date,
currency) and touches only changed rows, gold is recomputed from silver.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from medallion.lakehouse import Lakehouse
from medallion.lineage import lineage_job
from medallion.lineage.steps import StepLineage, raw_load_ref, system_ref, tables_lineage
from medallion.pipelines import StepResult
from medallion.pipelines.bronze import load_bronze, load_bronze_lineage
from medallion.raw.landing import land_records, raw_zone
from medallion.sources.fx_rates import SOURCE, fetch_fx_rates
from medallion.transforms.fx_rates import (
    DUPLICATE_RULE,
    FX_RATE_RULES,
    SILVER_KEYS,
    build_fx_daily_change,
    clean_fx_rates,
    count_fx_rate_outcomes,
)

BRONZE_NAME = "fx_rates"
BRONZE_TABLE = f"bronze.{BRONZE_NAME}"
SILVER_TABLE = "silver.fx_rates"
GOLD_TABLE = "gold.fx_daily_change"
UNTRACKED_RUN_ID = "untracked"
"""``_run_id`` of bronze rows loaded outside a tracked job run."""


def ingest_fx_rates_lineage(storage_root: str | Path, run_date: date, api_url: str, **_: object
                            ) -> StepLineage:
    """``ingest_fx_rates`` reads the API's rates and writes one raw load."""
    raw = raw_load_ref(storage_root, SOURCE, None, run_date)
    return StepLineage(
        job_name="ingest.fx_rates",
        storage_root=Path(storage_root),
        inputs=(system_ref("fx-api", api_url, "rates"),),
        outputs=(raw,),
        rows_written=lambda result: {raw.name: result.rows_written},
    )


@lineage_job(ingest_fx_rates_lineage)
def ingest_fx_rates(
    storage_root: str | Path,
    run_date: date,
    api_url: str,
    *,
    base: str = "USD",
    attempts: int = 5,
    now: datetime | None = None,
) -> StepResult:
    """Fetch the rates of ``run_date`` and land them under ``raw/fx_rates/load_dt=<run_date>``."""
    records = fetch_fx_rates(api_url, run_date, base, attempts=attempts)
    manifest = land_records(
        raw_zone(storage_root),
        SOURCE,
        None,
        run_date,
        records,
        source_positions={"rate_date": run_date.isoformat(), "base": base},
        expected_columns=("date", "base", "currency", "rate"),
        anomalies={
            "wrong_type:rate": sum(
                1 for r in records if not isinstance(r["rate"], int | float) or r["rate"] is True
            )
        },
        now=now,
    )
    return StepResult(
        step="ingest_fx_rates",
        target=str(manifest.load_dir),
        rows_in=len(records),
        rows_written=manifest.row_count,
    )


@lineage_job(lambda **arguments: load_bronze_lineage(table=BRONZE_NAME, **arguments))
def load_bronze_fx_rates(
    lakehouse: Lakehouse, run_date: date, *, run_id: str = UNTRACKED_RUN_ID
) -> StepResult:
    """Replace ``bronze.fx_rates`` partition ``_proc_date = run_date`` with that day's raw load.

    The generic contract-driven bronze step; ``run_id`` defaults to a constant so that a run
    outside a job (the notebook has no run-id parameter) re-runs to identical tables.
    """
    return load_bronze(lakehouse, BRONZE_NAME, run_date, run_id=run_id)


@lineage_job(lambda lakehouse, **_: tables_lineage(
    "update_silver.fx_rates", lakehouse, inputs=[BRONZE_TABLE], outputs=[SILVER_TABLE]))
def update_silver_fx_rates(lakehouse: Lakehouse, run_date: date) -> StepResult:
    """Clean the bronze rows of ``run_date`` and MERGE them into ``silver.fx_rates``."""
    bronze = _bronze_rows_of(lakehouse, run_date)
    outcome = count_fx_rate_outcomes(bronze).collect()[0]
    lakehouse.merge(clean_fx_rates(bronze), SILVER_TABLE, keys=SILVER_KEYS)
    return StepResult(
        step="update_silver_fx_rates",
        target=SILVER_TABLE,
        rows_in=outcome["rows_in"],
        rows_written=outcome["rows_out"],
        rows_dropped={name: outcome[name] for name in (*FX_RATE_RULES, DUPLICATE_RULE)},
    )


@lineage_job(lambda lakehouse, **_: tables_lineage(
    "build_gold.fx_daily_change", lakehouse, inputs=[SILVER_TABLE], outputs=[GOLD_TABLE]))
def build_gold_fx_daily_change(lakehouse: Lakehouse) -> StepResult:
    """Recompute ``gold.fx_daily_change`` from the whole of ``silver.fx_rates``."""
    silver = lakehouse.read(SILVER_TABLE)
    lakehouse.write(build_fx_daily_change(silver), GOLD_TABLE, mode="overwrite")
    return StepResult(
        step="build_gold_fx_daily_change",
        target=GOLD_TABLE,
        rows_in=silver.count(),
        rows_written=lakehouse.read(GOLD_TABLE).count(),
    )


def _bronze_rows_of(lakehouse: Lakehouse, run_date: date) -> DataFrame:
    return lakehouse.read(BRONZE_TABLE).where(sf.col("_proc_date") == sf.lit(run_date))
