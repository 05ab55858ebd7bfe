"""The FX slice end to end: API stand-in -> raw, then the generic bronze, silver and gold steps
driven by the FX specs; re-runs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.errors import RawLoadError
from medallion.lakehouse.pipelines import StepResult
from medallion.lakehouse.pipelines.bronze import load_bronze
from medallion.lakehouse.pipelines.fx_rates import ingest_fx_rates
from medallion.lakehouse.pipelines.gold import build_gold
from medallion.lakehouse.pipelines.silver import update_silver
from medallion.lakehouse.raw.landing import land_records, load_dir, read_manifest
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from medallion.platform.devstack.fx_api import FxApiServer

D1, D2 = date(2026, 11, 2), date(2026, 11, 3)
BRONZE_TABLE, SILVER_TABLE = "bronze.fx_rates", "silver.fx_rates"
GOLD_TABLE = "gold.fx_daily_change"
TABLES = (BRONZE_TABLE, SILVER_TABLE, GOLD_TABLE)
RUN = "fx-run"
NO_DROPS = {"duplicate_record": 0, "superseded_by_newer_version": 0}


def run_day(lakehouse: Lakehouse, api: FxApiServer, run_date: date) -> list[StepResult]:
    return [
        ingest_fx_rates(lakehouse.storage_root, run_date, api.url),
        load_bronze(lakehouse, "fx_rates", run_date, run_id=RUN),
        update_silver(lakehouse, SILVER_TABLE, run_date, run_id=RUN, job="fx"),
        build_gold(lakehouse, GOLD_TABLE, run_id=RUN, salt="fx-salt", job="fx"),
    ]


def api_rates(api: FxApiServer, run_date: date) -> dict[str, Decimal]:
    payload = httpx.get(f"{api.url}/v1/rates", params={"date": run_date.isoformat()}).json()
    return {currency: Decimal(str(rate)) for currency, rate in payload["rates"].items()}


def silver_values(lakehouse: Lakehouse) -> list[Row]:
    return lakehouse.read(SILVER_TABLE).select("rate_date", "base", "currency", "rate").collect()


@dataclass(frozen=True)
class TwoDays:
    """A storage root after D1 and D2 ran through every step, and the D2 step results."""

    root: Path
    results: list[StepResult]


@pytest.fixture(scope="module")
def two_days(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> TwoDays:
    """Run D1 and D2 once per module; tests work on copies (``copy_of``)."""
    root = tmp_path_factory.mktemp("fx-two-days")
    lakehouse = Lakehouse.open(spark, StorageRoot(root))
    with FxApiServer(seed=42) as api:
        run_day(lakehouse, api, D1)
        return TwoDays(root, run_day(lakehouse, api, D2))


def copy_of(spark: SparkSession, two_days: TwoDays, tmp_path: Path) -> Lakehouse:
    """A private copy of the two-day lakehouse (a Delta table's log holds relative paths)."""
    shutil.copytree(two_days.root, tmp_path / "root")
    return Lakehouse.open(spark, StorageRoot(tmp_path / "root"))


def test_two_days_flow_through_every_layer(
    spark: SparkSession, two_days: TwoDays, fx_api: FxApiServer
) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(two_days.root))

    assert two_days.results == [
        StepResult(
            "ingest_fx_rates", str(load_dir(lakehouse.raw_root, "fx_rates", None, D2)), 10, 10
        ),
        StepResult("load_bronze_fx_rates", BRONZE_TABLE, 10, 10),
        StepResult("update_fx_rates", SILVER_TABLE, 10, 10, NO_DROPS),
        StepResult("build_fx_daily_change", GOLD_TABLE, 20, 20),
    ]
    day1, day2 = api_rates(fx_api, D1), api_rates(fx_api, D2)
    expected_gold = [
        Row(
            rate_date=D1,
            currency=c,
            base="USD",
            rate=day1[c],
            previous_rate_date=None,
            previous_rate=None,
            change_pct=None,
        )
        for c in day1
    ] + [
        Row(
            rate_date=D2,
            currency=c,
            base="USD",
            rate=day2[c],
            previous_rate_date=D1,
            previous_rate=day1[c],
            change_pct=((day2[c] - day1[c]) / day1[c] * 100).quantize(
                Decimal("0.0001"), rounding=ROUND_HALF_UP
            ),
        )
        for c in day2
    ]
    assertDataFrameEqual(lakehouse.read(GOLD_TABLE), expected_gold, checkRowOrder=False)


def test_rerunning_a_day_leaves_every_table_identical(
    spark: SparkSession, two_days: TwoDays, fx_api: FxApiServer
) -> None:
    # On the module's own root, not a copy: the ingest step's result names its absolute load dir.
    lakehouse = Lakehouse.open(spark, StorageRoot(two_days.root))
    manifest = read_manifest(load_dir(lakehouse.raw_root, "fx_rates", None, D2))
    before = {table: lakehouse.read(table).collect() for table in TABLES}

    again = run_day(lakehouse, fx_api, D2)

    assert again == two_days.results
    assert read_manifest(manifest.load_dir) == manifest
    for table in TABLES:
        assertDataFrameEqual(lakehouse.read(table), before[table], checkRowOrder=False)


def test_a_corrected_rate_relanded_replaces_the_silver_value(
    spark: SparkSession, two_days: TwoDays, tmp_path: Path, fx_api: FxApiServer
) -> None:
    lakehouse = copy_of(spark, two_days, tmp_path)
    before = silver_values(lakehouse)
    httpx.post(
        f"{fx_api.url}/admin/rates", json={"date": "2026-11-03", "currency": "EUR", "rate": 0.5}
    ).raise_for_status()

    run_day(lakehouse, fx_api, D2)

    corrected = Row(rate_date=D2, base="USD", currency="EUR", rate=Decimal("0.5"))
    expected = [
        corrected if (row.rate_date, row.currency) == (D2, "EUR") else row for row in before
    ]
    assertDataFrameEqual(silver_values(lakehouse), expected, checkRowOrder=False)
    bronze_d2 = lakehouse.read(BRONZE_TABLE).where(sf.col("_proc_date") == sf.lit(D2))
    assert bronze_d2.count() == 10
    assertDataFrameEqual(
        bronze_d2.where(sf.col("currency") == "EUR").select("rate"), [Row(rate=Decimal("0.5"))]
    )
    gold_eur_d2 = lakehouse.read(GOLD_TABLE).where(
        (sf.col("currency") == "EUR") & (sf.col("rate_date") == sf.lit(D2))
    )
    assertDataFrameEqual(gold_eur_d2.select("rate"), [Row(rate=Decimal("0.5"))])
    # Same table names, another storage root: the original lakehouse is untouched.
    assertDataFrameEqual(
        silver_values(Lakehouse.open(spark, StorageRoot(two_days.root))),
        before,
        checkRowOrder=False,
    )


def test_dirty_raw_rows_are_quarantined_or_dropped_by_reason(
    spark: SparkSession, tmp_path: Path
) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))
    records: list[dict[str, Any]] = [
        {"date": "2026-11-02", "base": "USD", "currency": "EUR", "rate": 0.92},
        {"date": "2026-11-02", "base": "USD", "currency": "EUR", "rate": 0.92},
        {"date": "2026-11-02", "base": "USD", "currency": "GBP", "rate": "n/a"},
        {"date": "2026-11-02", "base": "USD", "currency": None, "rate": 1.37},
        {"date": "2026-11-02", "base": "USD", "currency": "JPY", "rate": 151.5},
        {"date": "2026-11-02", "base": "EUR", "currency": "CHF", "rate": 0.94},
    ]
    land_records(lakehouse.raw_root, "fx_rates", None, D1, records)

    bronze = load_bronze(lakehouse, "fx_rates", D1, run_id=RUN)
    silver = update_silver(lakehouse, SILVER_TABLE, D1, run_id=RUN, job="fx")

    assert bronze == StepResult("load_bronze_fx_rates", BRONZE_TABLE, 6, 6)
    # "n/a" is no decimal: NULL in bronze, its text rescued, quarantined by silver's rule
    assertDataFrameEqual(
        lakehouse.read(BRONZE_TABLE)
        .where(sf.col("currency") == "GBP")
        .select("rate", "_rescued_data"),
        [Row(rate=None, _rescued_data={"rate": "n/a"})],
    )
    assert silver == StepResult(
        "update_fx_rates",
        SILVER_TABLE,
        rows_in=6,
        rows_written=2,
        rows_quarantined=3,
        rows_dropped={**NO_DROPS, "duplicate_record": 1},
    )
    assertDataFrameEqual(
        lakehouse.read(SILVER_TABLE).select("currency", "rate"),
        [Row(currency="EUR", rate=Decimal("0.92")), Row(currency="JPY", rate=Decimal("151.5"))],
        checkRowOrder=False,
    )
    # Nothing is lost: each rejected row is in the quarantine table with every rule it failed.
    quarantined = lakehouse.read("silver.fx_rates_quarantine").select(
        "currency", "base", sf.transform("_errors", lambda error: error["name"]).alias("rules")
    )
    assertDataFrameEqual(
        quarantined,
        [
            Row(currency="GBP", base="USD", rules=["rate_is_positive_number"]),
            # a warning rule it also failed is listed too
            Row(currency=None, base="USD", rules=["currency_is_iso_code", "currency_in_set"]),
            Row(currency="CHF", base="EUR", rules=["base_is_usd"]),
        ],
        checkRowOrder=False,
    )


def test_bronze_refuses_a_day_without_a_complete_load(spark: SparkSession, tmp_path: Path) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path))

    with pytest.raises(RawLoadError, match=r"no complete load at .*fx_rates/load_dt=2026-11-02"):
        load_bronze(lakehouse, "fx_rates", D1, run_id=RUN)
