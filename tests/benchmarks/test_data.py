"""The benchmark's generated raw loads: day 1 and day 2 pass bronze's checks, as planned."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as sf

from benchmarks.data import (
    DAY2,
    FX_DAYS,
    LANDED_AT,
    PROC_DATE,
    IncrementalDay,
    Sizes,
    _dirty,
    behavior_records,
    land_incremental_day,
    land_raw_loads,
    landed_at,
    write_bronze,
)
from medallion.lakehouse.contracts import load_contract
from medallion.lakehouse.contracts.conform import (
    check_contract,
    parse_json_lines,
    profile_load,
    read_profile,
)
from medallion.lakehouse.lineage.transport import ENABLED_ENV
from medallion.lakehouse.pipelines.bronze import (
    bronze_tables,
    check_row_counts,
    load_bronze,
    read_raw_lines,
)
from medallion.lakehouse.raw.landing import load_dir, read_manifest
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from medallion.lakehouse.transforms.bronze import to_bronze
from medallion.platform.generate import vocab

SCALE = 0.001  # 5,000 events, 1,000 Snowflake + 300 Kafka orders, 200 customers
FRACTION = 0.05
# IncrementalDay.at(Sizes.at(0.001), 0.05), worked out by hand:
PLAN = IncrementalDay(
    first_event=4_950,  # day 1: round(5,000 / 1.01) = 4,950 numbers, 825 whole sessions of 6
    new_events=248,  # round(0.05 x 5,000 / 1.01)
    first_order=943,  # day 1: round(1,000 / 1.06) base orders
    new_orders=24,  # 0.05 x 1,000 = 50: half re-extracted, round(25 / 1.06) new
    resent_orders=25,
    first_kafka_order=180,  # day 1: 0.6 x 300 creations
    kafka_creations=9,  # 0.05 x 300 = 15: 60 % creations, 40 % (6) changes
    kafka_updates=3,
    kafka_deletes=3,  # positions 0, 1, 2 of each 10
    first_offset=300,  # day 1's offsets are its event numbers 0..299
    first_customer=200,
    new_customers=2,  # 20 % of the 10 re-sent
    changed_customers=10,  # 0.05 x 200
    fx_rates=10,
)


def bronze(lakehouse: Lakehouse, table: str, day: date) -> DataFrame:
    """One day of a bronze table, read by path (two storage roots share the session's names)."""
    path = lakehouse.path(f"bronze.{table}")
    frame = lakehouse.spark.read.format("delta").load(str(path))
    return frame.where(sf.col("_proc_date") == sf.lit(day))


def checked_load(lakehouse: Lakehouse, table: str, day: date) -> DataFrame:
    """The bronze rows of a landed load, after the checks ``load_bronze`` makes before writing
    (manifest checksums, contract, row counts), without the Delta writes."""
    entry = bronze_tables()[table]
    manifest = read_manifest(load_dir(lakehouse.raw_root, entry.raw_source, entry.raw_entity, day))
    contract = load_contract("bronze", entry.contract_entity)
    parsed = parse_json_lines(read_raw_lines(lakehouse.spark, manifest, lakehouse.storage_root))
    profile = read_profile(profile_load(parsed, contract).collect()[0], contract)
    check_contract(contract, profile, str(manifest.load_dir))
    check_row_counts(entry.table, manifest, profile.records, profile.bad_lines)
    return to_bronze(parsed, contract, ingest_ts=manifest.landed_at, proc_date=day, run_id="test")


def null_keys(spark: SparkSession, first: int, count: int, salt: str) -> int:
    """How many of the numbers ``first`` .. ``first + count - 1`` the generator's dirt rule
    gives a NULL key."""
    return spark.range(first, first + count).where(_dirty(sf.col("id"), salt)).count()


def latest(rows: list[Row], key: str, order: str) -> dict[str, Row]:
    """The row with the greatest ``order`` per non-null ``key`` (NULL ``order`` first)."""
    found: dict[str, Row] = {}
    for row in sorted(rows, key=lambda row: (row[order] is not None, row[order] or datetime.min)):
        if row[key] is not None:
            found[row[key]] = row
    return found


def test_day_one_and_day_two_land_and_pass_the_bronze_checks(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENABLED_ENV, "off")  # lineage is not what is measured here
    sizes = Sizes.at(SCALE)
    assert IncrementalDay.at(sizes, FRACTION) == PLAN
    lakehouse = Lakehouse.open(spark, StorageRoot(tmp_path / "lake"))

    landed = {
        PROC_DATE: land_raw_loads(lakehouse, sizes),
        DAY2: land_incremental_day(lakehouse, sizes, FRACTION),
    }

    for day, manifests in landed.items():
        assert sorted(manifests) == sorted(bronze_tables())
        assert {manifest.landed_at for manifest in manifests.values()} == {landed_at(day)}
    # The behavior loads go through the real step; every other load through the checks it
    # makes before writing (contract, row counts), which raise on a break.
    for day in landed:
        result = load_bronze(lakehouse, "customer_behavior", day, run_id="test-data")
        assert result.rows_in == landed[day]["customer_behavior"].row_count
    loads = {(table, day): checked_load(lakehouse, table, day)
             for day, manifests in landed.items() for table in manifests
             if table != "customer_behavior"}
    assert landed_at(DAY2) == LANDED_AT.replace(day=2)

    # Day 1's behavior load gives the rows write_bronze types from the same records.
    reference = Lakehouse.open(spark, StorageRoot(tmp_path / "reference"))
    records = behavior_records(spark, sizes.events, sizes.customers)
    write_bronze(reference, "customer_behavior", records)
    written = bronze(reference, "customer_behavior", PROC_DATE)
    loaded = bronze(lakehouse, "customer_behavior", PROC_DATE)
    compared = [  # a map cannot be compared: its sorted entries can
        sf.array_sort(sf.map_entries(name)).alias(name)
        if name == "_rescued_data"
        else sf.col(name)
        for name in written.columns
        if name not in ("_source_file", "_run_id")
    ]
    assert written.select(compared).exceptAll(loaded.select(compared)).count() == 0
    assert loaded.select(compared).exceptAll(written.select(compared)).count() == 0

    # behavior: new event ids only, the planned number of them
    events1 = {row[0] for row in bronze(lakehouse, "customer_behavior", PROC_DATE)
               .select("event_id").collect()}
    events2 = bronze(lakehouse, "customer_behavior", DAY2)
    new_events = {row[0] for row in events2.select("event_id").collect() if row[0] is not None}
    assert not new_events & events1
    assert len(new_events) == PLAN.new_events - null_keys(
        spark, PLAN.first_event, PLAN.new_events, "event_null_key"
    )
    assert events2.where(sf.col("_ingest_ts") != sf.lit(landed_at(DAY2))).count() == 0

    # snowflake: a full snapshot again (day 1's rows), new orders, and old ones re-extracted
    # once each, later and moved on
    orders1 = loads["snowflake_orders", PROC_DATE].collect()
    orders2 = loads["snowflake_orders", DAY2].collect()
    current1 = latest(orders1, "order_id", "updated_at")
    business = [name for name in orders1[0].asDict() if not name.startswith("_")]
    assert not (Counter(tuple(row[name] for name in business) for row in orders1)
                - Counter(tuple(row[name] for name in business) for row in orders2))
    resent = [row for row in orders2 if row["order_id"] in current1
              and (row["updated_at"] or datetime.min) > (current1[row["order_id"]]["updated_at"]
                                                         or datetime.min)]
    assert len(resent) == len({row["order_id"] for row in resent}) == PLAN.resent_orders
    for row in resent:
        before = current1[row["order_id"]]
        assert row["updated_at"] > before["updated_at"]
        assert (before["status"], row["status"]) in {
            ("placed", "shipped"), ("placed", "delivered"), ("shipped", "delivered"),
            ("delivered", "returned"),
        }
    new_orders = {row["order_id"] for row in orders2 if row["order_id"] is not None} - set(current1)
    assert len(new_orders) == PLAN.new_orders - null_keys(
        spark, PLAN.first_order, PLAN.new_orders, "order_null_key"
    )

    # kafka: creations of new orders; one update or delete per old clean Snowflake order, after
    # every earlier version of it; new offsets
    kafka1 = loads["kafka_orders", PROC_DATE].collect()
    kafka2 = loads["kafka_orders", DAY2].collect()
    changes = [row for row in kafka2 if row["order_id"] in current1]
    assert Counter(row["op"] for row in changes) == {
        "u": PLAN.kafka_updates, "d": PLAN.kafka_deletes
    }
    assert len({row["order_id"] for row in changes}) == PLAN.kafka_changes
    assert not {row["order_id"] for row in changes} & {row["order_id"] for row in resent}
    deleted1 = {row["order_id"] for row in kafka1 if row["op"] == "d"}
    assert not {row["order_id"] for row in changes} & deleted1
    for row in changes:
        earlier = [r["updated_at"] for r in orders1 if r["order_id"] == row["order_id"]]
        earlier += [r["event_ts"] for r in kafka1 if r["order_id"] == row["order_id"]]
        assert row["event_ts"] > max(ts for ts in earlier if ts is not None)
    creations = [row for row in kafka2 if row["op"] == "c"]
    assert len(creations) == PLAN.kafka_creations
    assert not {row["order_id"] for row in creations} & {row["order_id"] for row in kafka1}
    assert len(changes) + len(creations) == len(kafka2)
    assert min(row["kafka_offset"] for row in kafka2) == PLAN.first_offset
    assert max(row["kafka_offset"] for row in kafka1) < PLAN.first_offset
    assert len({(row["kafka_partition"], row["kafka_offset"]) for row in kafka2}) == len(kafka2)

    # crm: existing customers re-sent later with a new stage and/or country, a few new ones
    crm1 = loads["crm_accounts", PROC_DATE].collect()
    crm2 = loads["crm_accounts", DAY2].collect()
    current_crm1 = latest(crm1, "customer_id", "last_modified_date")
    current_crm2 = latest(crm2, "customer_id", "last_modified_date")
    changed = set(current_crm2) & set(current_crm1)
    assert len(changed) == PLAN.changed_customers
    for customer in changed:
        before, after = current_crm1[customer], current_crm2[customer]
        assert after["last_modified_date"] > (before["last_modified_date"] or datetime.min)
        assert (after["country"], after["lifecycle_stage"]) != (
            before["country"], before["lifecycle_stage"]
        )
    assert len(set(current_crm2) - changed) == PLAN.new_customers - null_keys(
        spark, PLAN.first_customer, PLAN.new_customers, "crm_null_key"
    )

    # fx_rates: day 2's rate per currency; day 1's from before the first order on
    rates2 = loads["fx_rates", DAY2].select("rate_date", "currency").collect()
    assert len(rates2) == PLAN.fx_rates
    assert {(row[0], row[1]) for row in rates2} == {(DAY2, code) for code in vocab.USD_LEVELS}
    rates1 = loads["fx_rates", PROC_DATE]
    summary = rates1.agg(sf.min("rate_date"), sf.count(sf.lit(1))).first()
    assert summary is not None
    assert summary[1] == (FX_DAYS + 1) * len(vocab.USD_LEVELS)
    order_dates = [row["order_ts"] for row in orders1]
    order_dates += [row["event_ts"] for row in kafka1 if row["op"] == "c"]
    assert summary[0] <= min(ts for ts in order_dates if ts is not None).date()
