"""The FX-rates API into the raw zone: the one step of the FX slice that is its own.

From raw on, FX rates go through the generic steps like every other source: bronze
(``pipelines.bronze``, contract ``bronze/fx_rates``), silver (``pipelines.silver``, spec
``silver/fx_rates.yml``) and gold (``pipelines.gold``, spec ``gold/fx_daily_change.yml``).
Landing the same rates again is a no-op.
"""

from __future__ import annotations

from datetime import date, datetime

from medallion.lakehouse.lineage import lineage_job
from medallion.lakehouse.lineage.steps import StepLineage, raw_load_ref, system_ref
from medallion.lakehouse.pipelines import StepResult
from medallion.lakehouse.raw.landing import land_records, raw_zone
from medallion.lakehouse.sources.fx_rates import SOURCE, fetch_fx_rates
from medallion.lakehouse.storage import StorageRoot


def ingest_fx_rates_lineage(storage_root: StorageRoot, run_date: date, api_url: str, **_: object
                            ) -> StepLineage:
    """``ingest_fx_rates`` reads the API's rates and writes one raw load."""
    raw = raw_load_ref(storage_root, SOURCE, None, run_date)
    return StepLineage(
        job_name="ingest.fx_rates",
        storage_root=storage_root,
        inputs=(system_ref("fx-api", api_url, "rates"),),
        outputs=(raw,),
        rows_written=lambda result: {raw.name: result.rows_written},
    )


@lineage_job(ingest_fx_rates_lineage)
def ingest_fx_rates(
    storage_root: StorageRoot,
    run_date: date,
    api_url: str,
    *,
    base: str = "USD",
    attempts: int = 5,
    initial_wait_seconds: float = 0.5,
    now: datetime | None = None,
) -> StepResult:
    """Fetch the rates of ``run_date`` and land them under ``raw/fx_rates/load_dt=<run_date>``."""
    records = fetch_fx_rates(
        api_url, run_date, base, attempts=attempts, initial_wait_seconds=initial_wait_seconds
    )
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
