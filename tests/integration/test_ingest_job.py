"""``ingest_daily_sources`` end to end: the real bundle job, the CLI, the five real stand-ins.

Every expectation comes from the generator (what it put into each system that day), never from
the extractors' code. The tests run in file order on the integration package's shared world,
after the other modules: its first two daily runs, a rerun, a third day with the CRM down, then
a full reload of the whole range.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from medallion.lakehouse.raw.landing import (
    list_loads,
    load_dir,
    raw_zone,
    read_manifest,
    source_dir,
)
from medallion.lakehouse.state import state_dir
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack.fx_api import CURRENCIES
from medallion.platform.generate.load import behavior_events_on, kafka_order_events_on
from medallion.platform.generate.model import crm_accounts_on, late_crm_updates, orders_snapshot
from medallion.platform.jobs.notifications import OUTBOX
from tests.integration.conftest import BUILT_DAYS, BuiltWorld, SourceWorld

pytestmark = pytest.mark.integration

SOURCES = {
    "snowflake": "orders", "redshift": "behavior", "crm": "accounts", "kafka": "orders",
    "fx_rates": None,
}
INGEST_TASKS = ("ingest_snowflake_orders", "ingest_redshift_behavior", "ingest_crm_accounts",
                "ingest_kafka_orders", "ingest_fx_rates")
# The job's landing tasks, without the build they trigger: where a test checks only what lands
# (test_build_analytics builds what the same job lands, through the whole job).
LANDING = ("plan_load_dates", "full_reload", "reset_incremental_positions", *INGEST_TASKS,
           "check_landed_files", "record_source_positions")


def task_states(record: dict[str, Any]) -> dict[str, str]:
    return {task["task_key"]: task["state"] for task in record["tasks"]}


def manifests(world: SourceWorld) -> dict[tuple[str, date], tuple[str, str]]:
    """(source, load_dt) -> (sha256, landed_at) of every complete load."""
    found = {}
    for source, entity in SOURCES.items():
        for load_dt in list_loads(raw_zone(StorageRoot(world.root)), source, entity):
            manifest = read_manifest(
                load_dir(raw_zone(StorageRoot(world.root)), source, entity, load_dt)
            )
            found[(source, load_dt)] = (manifest.sha256, manifest.landed_at.isoformat())
    return found


def alerts(world: SourceWorld, record: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    """(task, event, state line) of each notification the run sent, in order."""
    sent = map(json.loads, (world.runs / OUTBOX).read_text().splitlines())
    return [
        (n["task_key"], n["event"], next(x for x in n["body"].splitlines() if "State:" in x))
        for n in sent
        if n["run_id"] == record["run_id"] and n["event"] == "on_failure"
    ]


def dead_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def keyed(records: list[dict[str, Any]], key: str) -> Counter[Any]:
    return Counter(record.get(key) for record in records)


def expected_events(world: SourceWorld, day: date) -> Counter[Any]:
    """The behavior events of ``day`` the mark can order: event_id and event_ts both set."""
    return Counter(event["event_id"] for event in behavior_events_on(world.data, day)
                   if event["event_id"] is not None and event["event_ts"] is not None)


@pytest.fixture(scope="module")
def two_days(built_world: BuiltWorld) -> list[dict[str, Any]]:
    """The runs of days 0 and 1: the systems advanced, then the job ran for that day."""
    return [built_world.ingest_runs[built_world.world.day(index)] for index in (0, 1)]


def test_every_task_succeeds_and_the_full_reload_branch_is_skipped(
    two_days: list[dict[str, Any]],
) -> None:
    assert task_states(two_days[0]) == {
        "plan_load_dates": "SUCCESS", "full_reload": "SUCCESS",
        "reset_incremental_positions": "EXCLUDED", **dict.fromkeys(INGEST_TASKS, "SUCCESS"),
        "check_landed_files": "SUCCESS", "record_source_positions": "SUCCESS",
        "has_new_rows": "SUCCESS", "build_analytics": "SUCCESS",
    }


def test_snowflake_lands_the_full_snapshot_of_each_day(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    for index in (0, 1):
        day = source_world.day(index)
        landed = source_world.raw_records("snowflake", "orders", day)
        snapshot = orders_snapshot(source_world.data, day)
        assert len(landed) == len(snapshot) == source_world.reports[day].snowflake.rows
        assert keyed(landed, "order_id") == keyed(snapshot, "order_id")


def test_redshift_lands_each_event_once_on_the_day_it_appeared(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    for index in (0, 1):
        day = source_world.day(index)
        landed = source_world.raw_records("redshift", "behavior", day)
        assert keyed(landed, "event_id") == expected_events(source_world, day)


def test_kafka_lands_every_message_of_each_day_exactly_once(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    for index in (0, 1):
        day = source_world.day(index)
        landed = source_world.raw_records("kafka", "orders", day)
        produced = kafka_order_events_on(source_world.data, day)
        assert len(landed) == len(produced) == source_world.reports[day].kafka.rows
        assert keyed(landed, "order_id") == keyed(produced, "order_id")


def test_crm_lands_every_account_and_the_late_updates_of_day_1(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    first, second = source_world.day(0), source_world.day(1)
    landed = [*source_world.raw_records("crm", "accounts", first),
              *source_world.raw_records("crm", "accounts", second)]
    served = [*crm_accounts_on(source_world.data, first),
              *crm_accounts_on(source_world.data, second)]
    assert {r["customer_id"] for r in landed} == {
        r["customer_id"] for r in served if r["customer_id"] is not None
    }
    late = [u for u in late_crm_updates(source_world.data) if u["available_on"] == second]
    assert late, "the generator should produce late updates at this scale"
    day_two = {(r["customer_id"], r["last_modified_date"])
               for r in source_world.raw_records("crm", "accounts", second)}
    for update in late:
        stamp = update["last_modified_date"].isoformat().replace("+00:00", "Z")
        assert any(cid == update["customer_id"] and str(modified).startswith(stamp[:19])
                   for cid, modified in day_two), update


def test_fx_lands_one_rate_per_currency_per_day(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    for index in (0, 1):
        landed = source_world.raw_records("fx_rates", None, source_world.day(index))
        assert sorted(r["currency"] for r in landed) == sorted(CURRENCIES)


def dirt(world: SourceWorld, source: str, kind: str, day: date) -> list[str | None]:
    """Keys of the records the generator made dirty with ``kind`` that reach ``source`` on day."""
    return [entry.key for entry in world.data.manifest
            if (entry.source, entry.kind.value, entry.day) == (source, kind, day)]


def anomalies(world: SourceWorld, source: str, entity: str | None, day: date) -> dict[str, int]:
    raw = raw_zone(StorageRoot(world.root))
    return dict(read_manifest(load_dir(raw, source, entity, day)).anomalies)


def test_each_manifest_counts_the_dirt_the_generator_injected(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    for index in (0, 1):
        day = source_world.day(index)
        kafka = {
            "unknown_column:_debug_flag": len(dirt(source_world, "kafka_order_events",
                                                   "unknown_column", day)),
            "wrong_type:amount": len(dirt(source_world, "kafka_order_events", "wrong_type", day)),
            "null_key:order_id": len(dirt(source_world, "kafka_order_events", "null_key", day)),
        }
        assert anomalies(source_world, "kafka", "orders", day) == {
            k: v for k, v in kafka.items() if v
        }
        behavior = len(dirt(source_world, "behavior_events", "unknown_column", day))
        assert anomalies(source_world, "redshift", "behavior", day) == (
            {"unknown_column:_debug_flag": behavior} if behavior else {}
        )
        snapshot = orders_snapshot(source_world.data, day)
        wrong = [entry.key for entry in source_world.data.manifest
                 if (entry.source, entry.kind.value) == ("snowflake_orders", "wrong_type")]
        snowflake = {
            "wrong_type:order_amount": sum(1 for o in snapshot if o["order_id"] in wrong),
            "null_key:order_id": sum(1 for o in snapshot if o["order_id"] is None),
        }
        assert snowflake["wrong_type:order_amount"] > 0
        assert anomalies(source_world, "snowflake", "orders", day) == {
            k: v for k, v in snowflake.items() if v
        }


def test_the_file_check_counts_every_landed_load(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    run_dir = Path(two_days[1]["run_dir"])
    values = json.loads((run_dir / "_task_values" / "check_landed_files.json").read_text())
    day = source_world.day(1)
    raw = raw_zone(StorageRoot(source_world.root))
    rows = sum(read_manifest(load_dir(raw, s, e, day)).row_count
               for s, e in SOURCES.items())
    assert values == {"complete_loads": 5, "expected_loads": 5, "rows_landed": rows,
                      "new_loads": 5, "rows_new": rows}  # day 1 was never built before


def test_rerunning_a_day_changes_no_load(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    before = manifests(source_world)

    result, record = source_world.run_job("ingest_daily_sources",
                                          f"run_date={source_world.day(1)}")

    assert result.returncode == 0, result.stdout + result.stderr
    assert manifests(source_world) == before
    # Nothing new landed, so the day is not built again.
    assert task_states(record)["has_new_rows"] == "SUCCESS"
    assert task_states(record)["build_analytics"] == "EXCLUDED"


def test_a_down_source_fails_clearly_while_the_others_land(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    day = source_world.day(BUILT_DAYS)  # a day not landed yet
    source_world.advance(day)
    dead = f"http://127.0.0.1:{dead_port()}"

    # The client's retries keep their count; only their waits shrink (the job parameter).
    result, record = source_world.run_job("ingest_daily_sources", f"run_date={day}",
                                          f"crm_api_url={dead}", "source_retry_wait_seconds=0.01")

    assert result.returncode == 1
    states = task_states(record)
    assert states["ingest_crm_accounts"] == "FAILED"
    assert {states[t] for t in INGEST_TASKS if t != "ingest_crm_accounts"} == {"SUCCESS"}
    assert states["check_landed_files"] == "FAILED"  # it ran (ALL_DONE) and found the gap
    assert (states["has_new_rows"], states["build_analytics"]) == ("UPSTREAM_FAILED",) * 2
    assert states["record_source_positions"] == "UPSTREAM_FAILED"
    assert record["state"] == "FAILED"
    assert alerts(source_world, record) == [
        ("ingest_crm_accounts", "on_failure", "State: FAILED"),
        ("check_landed_files", "on_failure", "State: FAILED"),
        (None, "on_failure", "State: FAILED"),
    ]
    check = next(t for t in record["tasks"] if t["task_key"] == "check_landed_files")
    assert "RawLoadsMissing" in check["error"]
    assert "crm/accounts: 0 of 1" in check["error"]
    crm_task = next(t for t in record["tasks"] if t["task_key"] == "ingest_crm_accounts")
    message = crm_task["error"]
    assert "source 'crm'" in message
    assert f"{dead}/crm/v3/objects/contacts/search" in message
    assert "after 5 attempts; last error: ConnectError" in message
    assert "ingest_crm_accounts" in result.stderr
    assert dead in result.stderr
    landed = {source for source, entity in SOURCES.items()
              if day in list_loads(raw_zone(StorageRoot(source_world.root)), source, entity)}
    assert landed == {"snowflake", "redshift", "kafka", "fx_rates"}
    values = json.loads((Path(record["run_dir"]) / "_task_values" / "check_landed_files.json")
                        .read_text())
    assert (values["complete_loads"], values["expected_loads"]) == (4, 5)

    retry, _ = source_world.run_job("ingest_daily_sources", f"run_date={day}", only=LANDING)

    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert day in list_loads(raw_zone(StorageRoot(source_world.root)), "crm", "accounts")


def test_kafka_down_fails_the_run_and_alerts_though_every_load_is_complete(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    # The latest day again, Kafka unreachable: its rerun must ask the broker for its offsets.
    day = max(list_loads(raw_zone(StorageRoot(source_world.root)), "kafka", "orders"))
    before = manifests(source_world)

    result, record = source_world.run_job(
        "ingest_daily_sources", f"run_date={day}",
        f"kafka_bootstrap_servers=127.0.0.1:{dead_port()}", "kafka_timeout_seconds=2",
        only=LANDING,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    states = task_states(record)
    assert states["ingest_kafka_orders"] == "FAILED"
    # Every load of the day is complete (Kafka's from before), so the file check passes; the
    # run fails on the leaf that needs every source, as it would on Databricks.
    assert states["check_landed_files"] == "SUCCESS"
    assert (states["record_source_positions"], record["state"]) == ("UPSTREAM_FAILED", "FAILED")
    kafka = next(t for t in record["tasks"] if t["task_key"] == "ingest_kafka_orders")
    assert "SourceUnavailable: source 'kafka'" in kafka["error"]
    assert alerts(source_world, record) == [
        ("ingest_kafka_orders", "on_failure", "State: FAILED"),
        (None, "on_failure", "State: FAILED"),
    ]
    assert manifests(source_world) == before


def test_a_full_reload_of_the_range_moves_old_loads_aside_and_lands_everything_once(
    source_world: SourceWorld, two_days: list[dict[str, Any]]
) -> None:
    days = [source_world.day(i) for i in range(BUILT_DAYS + 1)]
    if days[-1] not in source_world.reports:  # when run on its own
        source_world.advance(days[-1])
    before = manifests(source_world)
    resets = state_dir(StorageRoot(source_world.root)) / "resets"
    shutil.rmtree(resets, ignore_errors=True)

    result, record = source_world.run_job(
        "ingest_daily_sources", f"run_date={days[-1]}", f"backfill_from={days[0]}",
        f"backfill_to={days[-1]}", "load_mode=full", only=LANDING,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert task_states(record)["reset_incremental_positions"] == "SUCCESS"
    (stamp,) = resets.iterdir()
    for source in ("redshift", "crm", "kafka"):
        archived = sorted(p.name for p in source_dir(stamp, source, SOURCES[source]).iterdir())
        assert archived == [f"load_dt={d}" for d in days if (source, d) in before]
    # Each day is landed again with its own records: the replayed days stop where they ended.
    for day in days:
        landed_events = keyed(source_world.raw_records("redshift", "behavior", day), "event_id")
        assert landed_events == expected_events(source_world, day), day
        landed_messages = keyed(source_world.raw_records("kafka", "orders", day), "order_id")
        produced = kafka_order_events_on(source_world.data, day)
        assert landed_messages == keyed(produced, "order_id"), day
    after = manifests(source_world)
    unchanged = [key for key in before if key[0] in {"snowflake", "fx_rates"}]
    assert unchanged  # full loads and daily pulls are not reset
    assert {key: after[key] for key in unchanged} == {key: before[key] for key in unchanged}
