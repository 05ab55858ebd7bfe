"""``build_analytics`` end to end on generated data: the real jobs, the CLI, the five stand-ins.

Two business days are ingested (each ingest run builds its day), in the integration package's
shared world. Every expectation comes from the generator: its dirt manifest says what must be
quarantined and under which rule, and an independent DuckDB oracle (tests/oracle, no pipeline
code) says what gold must hold. The tests run in file order; the last ones break things on
purpose and put back what the modules after them read.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf

from medallion.lakehouse.credentials import env_name, stored_local_secrets
from medallion.lakehouse.pipelines.gold import gold_rows, pii_hash_salt, read_built_from
from medallion.lakehouse.quality.spec import load_specs, spec_for
from medallion.lakehouse.raw.landing import land_records, load_dir, raw_zone, read_manifest
from medallion.lakehouse.runtime import read_task_values
from medallion.lakehouse.serving.glue import glue_client
from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.transforms.gold.customer_360 import CUSTOMER_360_SCHEMA
from medallion.platform import compute
from medallion.platform.devstack import postgres as local_postgres
from medallion.platform.devstack import snowflake as local_snowflake
from medallion.platform.generate import generate
from medallion.platform.generate.config import DirtKind
from medallion.platform.generate.model import late_crm_updates
from tests.integration.conftest import (
    BUILT_DAYS,
    KNOWN_SALT,
    WORLD,
    BuiltWorld,
    SourceWorld,
    read_table,
)
from tests.lakehouse.lineage.helpers import CUSTOMER_360_LINEAGE, read_events
from tests.oracle.oracle import expected_gold, oracle_connection
from tests.support.alert_receivers import (
    SMTP_PASSWORD,
    TOKEN,
    alert_secrets,
    serving_hook,
    serving_smtp,
)
from tests.support.glue_server import glue_server
from tests.support.html_pages import artifacts_dir, browser, cells

pytestmark = pytest.mark.integration

WORLD_DAYS = BUILT_DAYS
BUILD_TASKS = (
    "check_raw_files", "has_raw_files", "bronze_snowflake_orders", "bronze_kafka_orders",
    "bronze_customer_behavior", "bronze_crm_accounts", "bronze_fx_rates", "bronze_dq_breaker",
    "silver_dim_customer", "silver_fact_orders", "silver_fact_events", "silver_fx_rates",
    "silver_dq_breaker", "gold_fact_customer_360", "gold_orders_daily", "gold_fx_daily_change",
    "gold_dq_breaker", "publish_snowflake", "publish_redshift",
)
PUBLISH_TASKS = ("publish_snowflake", "publish_redshift")
GOLD = ("gold.fact_customer_360", "gold.orders_daily", "gold.fx_daily_change")
# Where each kind of dirt must end up: (quarantine table, key column, rules it may fail).
QUARANTINED: dict[tuple[str, DirtKind], tuple[str, str, frozenset[str]]] = {
    **{
        (source, kind): ("silver.fact_orders_quarantine", "order_id", rules)
        for source in ("snowflake_orders", "kafka_order_events")
        for kind, rules in (
            (DirtKind.WRONG_TYPE, frozenset({"order_amount_is_decimal"})),
            (DirtKind.OUT_OF_SET_VALUE, frozenset({"status_in_set", "currency_in_set"})),
            (DirtKind.ORPHAN_CUSTOMER, frozenset({"customer_in_dim_customer"})),
            (DirtKind.NEGATIVE_AMOUNT, frozenset({"order_amount_not_negative"})),
        )
    },
    ("behavior_events", DirtKind.MALFORMED_SESSION_ID): (
        "silver.fact_events_quarantine", "event_id", frozenset({"session_id_format"})),
    ("behavior_events", DirtKind.OUT_OF_SET_VALUE): (
        "silver.fact_events_quarantine", "event_id",
        frozenset({"event_type_in_set", "device_in_set"})),
    ("behavior_events", DirtKind.ORPHAN_CUSTOMER): (
        "silver.fact_events_quarantine", "event_id", frozenset({"customer_in_dim_customer"})),
}
# Null keys reach raw from Snowflake and Kafka only: a CRM record cannot exist without its id
# (the stand-in skips it), and the Redshift extractor's keyset on (event_ts, event_id) cannot
# order a NULL id, so it counts those rows in the manifest (null_key_rows) instead of landing them.
NULL_KEY_RULES = {
    "snowflake_orders": ("silver.fact_orders_quarantine", "order_id", "order_id_not_null"),
    "kafka_order_events": ("silver.fact_orders_quarantine", "order_id", "order_id_not_null"),
}
SILVER_AND_GOLD = (
    "silver.dim_customer", "silver.fact_orders", "silver.fact_events", "silver.fx_rates",
    "silver.dim_customer_quarantine", "silver.fact_orders_quarantine",
    "silver.fact_events_quarantine", "silver.fx_rates_quarantine", "gold.fact_customer_360",
    "gold.orders_daily",
)
WATCHED = (
    "bronze.crm_accounts", "bronze.customer_behavior", "bronze.fx_rates", "bronze.kafka_orders",
    "bronze.snowflake_orders", "silver.dim_customer", "silver.fact_events", "silver.fact_orders",
    "silver.fx_rates",
)
VOLUME_WATCHED = (
    "bronze.customer_behavior", "bronze.fx_rates", "bronze.kafka_orders", "bronze.snowflake_orders",
)
BRONZE = (
    "bronze.snowflake_orders", "bronze.kafka_orders", "bronze.customer_behavior",
    "bronze.crm_accounts", "bronze.fx_rates", "bronze.customer_behavior_unknown_columns",
)
FX_GOLD = ("gold.fx_daily_change",)


@pytest.fixture(scope="module", autouse=True)
def known_salt() -> Iterator[str]:
    """The PII hash salt of the world's runs, for this process's own reads of it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(env_name("pii-hash-salt"), KNOWN_SALT)
        yield KNOWN_SALT


table = read_table  # a table of the world's lakehouse, read by path


def build_runs(world: SourceWorld) -> list[dict[str, Any]]:
    """Every build_analytics run of the world, oldest first."""
    return [json.loads(path.read_text())
            for path in sorted((world.runs / "build_analytics").glob("*/run.json"))]


def states(record: dict[str, Any]) -> dict[str, str]:
    return {task["task_key"]: task["state"] for task in record["tasks"]}


def contents(spark: SparkSession, world: SourceWorld, names: Iterable[str]) -> dict[str, Any]:
    """Each table's rows without the run stamp (``_run_id``), sorted: what a re-run must keep."""
    found = {}
    for name in names:
        frame = table(spark, world, name)
        frame = frame.drop("_run_id") if "_run_id" in frame.columns else frame
        found[name] = sorted(map(str, frame.collect()))
    return found


@pytest.fixture(scope="module")
def built(built_world: BuiltWorld) -> dict[date, dict[str, Any]]:
    """Days 0 to 2 ingested and built, with dim_customer and gold as they were after each."""
    return built_world.after


def dirt_of_built_days(world: SourceWorld, built: dict[date, Any]) -> list[Any]:
    """The generator's dirt manifest, for the days built (the world has a day more)."""
    return [entry for entry in world.data.manifest if entry.day <= max(built)]


def test_the_world_holds_every_case_the_tests_trace_on_its_built_days() -> None:
    """The generated data, checked before anything is built: a kind of dirt, a late CRM update
    or a Kafka CDC event on an earlier day's order missing from the built days would let the
    tests that trace it pass on nothing."""
    data = generate(WORLD)
    days = [WORLD.start_date + timedelta(days=index) for index in range(BUILT_DAYS)]
    present = {(dirt.source, dirt.kind) for dirt in data.manifest if dirt.day in days}
    traced = {*QUARANTINED, *((source, DirtKind.NULL_KEY) for source in NULL_KEY_RULES),
              *((source, DirtKind.UNKNOWN_COLUMN)
                for source in ("behavior_events", "kafka_order_events"))}
    assert traced - present == set()
    known_before = {version["customer_id"] for version in data.crm_accounts
                    if version["available_on"] < days[-1]}
    late = [version for version in late_crm_updates(data)
            if version["available_on"] == days[-1] and version["customer_id"] in known_before]
    assert len(late) >= 2
    earlier_orders = {event["order_id"] for event in data.kafka_order_events
                      if event["event_ts"].date() < days[-1]}
    cdc = [event for event in data.kafka_order_events
           if event["event_ts"].date() == days[-1] and event["op"] in ("u", "d")
           and event["order_id"] in earlier_orders]
    assert cdc


def test_every_build_task_succeeds_each_day(
    source_world: SourceWorld, built: dict[date, dict[str, Any]]
) -> None:
    runs = build_runs(source_world)
    assert [run["parameters"]["run_date"] for run in runs] == [str(day) for day in built]
    for run in runs:
        # No Glue database is named locally, so the Athena registration is left out.
        assert states(run) == {**dict.fromkeys(BUILD_TASKS, "SUCCESS"),
                               "glue_requested": "SUCCESS", "register_glue": "EXCLUDED",
                               "record_build": "SUCCESS"}


def test_every_layer_notebook_shows_its_figures_and_each_breaker_names_every_rule(
    source_world: SourceWorld, built: dict[date, dict[str, Any]]
) -> None:
    last_day = str(max(built))
    (run_dir,) = [path.parent for path in sorted((source_world.runs / "build_analytics")
                                                 .glob("*/run.json"))
                  if json.loads(path.read_text())["parameters"]["run_date"] == last_day][:1]
    shown: dict[str, str] = {}
    for task in (t for t in BUILD_TASKS if t.startswith(("bronze_", "silver_", "gold_"))):
        outputs = [output for cell in nbformat.read(run_dir / f"{task}.ipynb", 4).cells  # type: ignore[no-untyped-call]
                   if cell.cell_type == "code" for output in cell.outputs]
        kinds = {kind for output in outputs for kind in output.get("data", {})}
        assert kinds & {"text/html", "image/png"}, f"{task} shows no table or chart: {kinds}"
        shown[task] = "".join(output["data"].get("text/html", "") for output in outputs
                              if "data" in output)
    for layer in ("bronze", "silver", "gold"):
        rules = {rule.name for spec in load_specs(layer).values() for rule in spec.expectations}
        named = {rule for rule in rules if f"<td>{rule}</td>" in shown[f"{layer}_dq_breaker"]}
        assert named == rules, layer


def test_the_exploration_notebook_runs_top_to_bottom_as_an_analyst(
    source_world: SourceWorld, built: dict[date, dict[str, Any]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import papermill

    server = compute.find_server(StorageRoot(source_world.root))
    assert server is not None
    monkeypatch.setenv("SPARK_REMOTE", server.url)  # the kernel attaches to the warm driver
    executed = tmp_path / "explore_gold.ipynb"

    papermill.execute_notebook(
        str(repo_root() / "notebooks" / "explore" / "explore_gold.ipynb"), str(executed),
        parameters={"storage_root": str(source_world.root), "role": "data_analyst"},
        kernel_name="python3", progress_bar=False, cwd=str(tmp_path),
    )

    cells = [cell for cell in nbformat.read(executed, 4).cells if cell.cell_type == "code"]  # type: ignore[no-untyped-call]
    data = [[output.get("data", {}) for output in cell.outputs] for cell in cells]
    html = ["".join(d.get("text/html", "") for d in cell) for cell in data]
    kinds = [{kind for d in cell for kind in d} for cell in data]
    tables = next(text for text in html if "the tables of gold" in text)
    for name in ("gold.fact_customer_360", "gold.orders_daily", "gold.fx_daily_change"):
        assert f"<td>{name}</td>" in tables
    revenue = next(i for i, text in enumerate(html) if "lifetime revenue (USD) by country" in text)
    assert "image/png" in kinds[revenue]
    assert any("DQ pass rates: role &#x27;data_analyst&#x27; may not read ops.dq_event_log"
               in text for text in html)
    assert "image/svg+xml" in kinds[-1]  # the lineage picture


def test_the_run_report_opens_in_a_browser_with_its_tasks_dq_charts_and_notebooks(
    source_world: SourceWorld, built_world: BuiltWorld, tmp_path: Path
) -> None:
    """The last day's ingest run's report links its build run's; that one, opened in headless
    Chromium, shows every task, every DQ rule, the duration chart, the lineage picture and a
    rendered notebook per layer task. The screenshot is kept as a test artifact."""
    from PIL import Image

    ingest = built_world.ingest_runs[built_world.days[-1]]
    ingest_page = Path(ingest["run_dir"]) / "report.html"
    (child,) = [href for href in cells(ingest_page.read_text(), "tasks").hrefs
                if href.endswith("/report.html")]
    build_page = (ingest_page.parent / child).resolve()
    build = json.loads((build_page.parent / "run.json").read_text())
    assert build["parameters"]["run_date"] == str(built_world.days[-1])

    dom = browser(build_page, tmp_path / "profile", "--dump-dom").stdout
    tasks = cells(dom, "tasks")
    assert [row[0] for row in tasks.rows[1:]] == [task["task_key"] for task in build["tasks"]]
    assert all((build_page.parent / href).is_file() for href in tasks.hrefs)
    assert set(tasks.hrefs) >= {
        f"{task}.html" for task in BUILD_TASKS if task.startswith(("bronze_", "silver_", "gold_"))
    }
    # Every rule a step checked (silver's and gold's specs; bronze rules are the breakers',
    # shown in their notebooks), with the counts of the run summary.
    rules = {(spec.dataset, rule.name) for layer in ("silver", "gold")
             for spec in load_specs(layer).values() for rule in spec.expectations}
    assert {(row[0], row[3]) for row in cells(dom, "dq").rows[1:]} == rules
    assert dom.count('class="bar"') == len(build["tasks"])
    lineage = dom[dom.index('id="lineage"'):]
    for name in ("gold.fact_customer_360", "gold.orders_daily", "silver.fact_orders"):
        assert f">{name}</text>" in lineage, name

    screenshot = artifacts_dir() / "build_analytics_report.png"
    browser(build_page, tmp_path / "profile", "--window-size=1280,2400",
            f"--screenshot={screenshot}")
    with Image.open(screenshot) as image:
        assert image.size == (1280, 2400)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or ()) > 50  # not blank


def warehouse_rows(world: SourceWorld) -> dict[str, list[tuple[Any, ...]]]:
    """Both warehouse tables' rows (gold's columns, in gold's order), sorted."""
    columns = [field.name for field in CUSTOMER_360_SCHEMA]
    # fakesnow reads a NULL timestamp back as 1970-01-01 (it stores NULL): ask IS NULL too.
    nullable = [f.name for f in CUSTOMER_360_SCHEMA if f.dataType.typeName() == "timestamp"]
    snowflake_conn = local_snowflake.connect(StorageRoot(world.root))
    try:
        cursor = snowflake_conn.cursor()
        cursor.execute(
            f"SELECT {', '.join(c.upper() for c in columns)}, "
            f"{', '.join(f'{c.upper()} IS NULL' for c in nullable)} "
            "FROM ANALYTICS.FACT_CUSTOMER_360"
        )
        in_snowflake = [
            tuple(
                None if name in nullable and row[len(columns) + nullable.index(name)] else value
                for name, value in zip(columns, row, strict=False)
            )
            for row in cursor.fetchall()
        ]
    finally:
        snowflake_conn.close()
    with local_postgres.connect(StorageRoot(world.root)) as conn:
        in_redshift = conn.execute(
            f"SELECT {', '.join(columns)} FROM redshift_analytics.gold_customer_360"
        ).fetchall()
    return {
        "snowflake": sorted(map(comparable, in_snowflake)),
        "redshift": sorted(map(comparable, in_redshift)),
    }


def comparable(row: Iterable[Any]) -> tuple[Any, ...]:
    """A row with timestamps as UTC instants, whatever time zone the client attached."""
    return tuple(
        value.astimezone(UTC).replace(tzinfo=None)
        if isinstance(value, datetime) and value.tzinfo else value
        for value in row
    )


def test_each_gold_build_records_the_column_lineage_of_its_spark_plan(
    source_world: SourceWorld, built: dict[date, dict[str, Any]]
) -> None:
    """The job's gold tasks run on Spark Connect, whose client gets the plan only as text:
    each day's COMPLETE event carries the plan's whole column lineage, as a classic session's
    does (checked in the lineage tests)."""
    completed = [event for event in read_events(source_world.root)
                 if event["job"]["name"] == "build_gold.fact_customer_360"
                 and event["eventType"] == "COMPLETE"]

    assert len(completed) == len(built)
    for event in completed:
        (output,) = event["outputs"]
        fields = output["facets"]["columnLineage"]["fields"]
        assert {
            column: [(source["name"], source["field"], source["transformations"][0]["subtype"])
                     for source in lineage["inputFields"]]
            for column, lineage in fields.items()
        } == CUSTOMER_360_LINEAGE


def test_gold_is_published_to_both_warehouses_and_reconciled(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    gold = table(spark, source_world, "gold.fact_customer_360").collect()
    expected = sorted(comparable(row) for row in gold)
    # Spark hands back naive local datetimes; the session time zone of the suite is UTC.
    assert warehouse_rows(source_world) == {"snowflake": expected, "redshift": expected}
    last = build_runs(source_world)[-1]
    for task in PUBLISH_TASKS:
        values = read_task_values(source_world.runs / "build_analytics" / last["run_id"], task)
        assert values["warehouse_figures"] == values["gold_figures"]
        assert values["gold_figures"]["rows"] == len(gold)


def test_no_raw_pii_reaches_gold_or_either_warehouse(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    """No generated name, e-mail, phone or customer id, as a whole value or inside one."""
    raw = {
        str(record[field]).strip()
        for record in (*source_world.data.customers, *source_world.data.crm_accounts)
        for field in ("name", "email", "phone", "customer_id")
        if len(str(record.get(field) or "").strip()) >= 5  # shorter dirt identifies nobody
    }
    rows = {warehouse: [tuple(map(str, row)) for row in found]
            for warehouse, found in warehouse_rows(source_world).items()}
    for name in GOLD:
        rows[name] = [tuple(map(str, row)) for row in table(spark, source_world, name).collect()]
    assert all(rows.values())
    texts = {place: "\n".join("\t".join(row) for row in found) for place, found in rows.items()}
    found = {place: sorted(value for value in raw if value in text)
             for place, text in texts.items()}
    assert found == {place: [] for place in ("snowflake", "redshift", *GOLD)}


def test_gold_equals_the_independent_oracle_row_for_row(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    expected = expected_gold(source_world.data, through=source_world.day(WORLD_DAYS - 1),
                             salt=pii_hash_salt(StorageRoot(source_world.root)))
    for name, oracle, order in (
        ("gold.fact_customer_360", expected.fact_customer_360, ["customer_id"]),
        ("gold.orders_daily", expected.orders_daily, ["order_date", "currency"]),
    ):
        actual = table(spark, source_world, name).orderBy(*order).toPandas()
        assert len(actual) == len(oracle) > 0
        pd.testing.assert_frame_equal(actual, oracle, check_dtype=False)


def test_gold_built_in_part_on_later_days_equals_a_full_rebuild(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    root = StorageRoot(source_world.root)
    # The last day changed customers (late CRM updates) and orders of earlier days, which Kafka
    # CDC events of that day update or delete (Snowflake's snapshot carries the same change).
    last_day = list(built)[-1]
    changes = {name: last_merge_changes(spark, source_world, name)
               for name in ("silver.dim_customer", "silver.fact_orders")}
    assert changes["silver.dim_customer"].where(
        sf.col("_change_type") == "update_postimage").count() > 0
    older = changes["silver.fact_orders"].where(
        (sf.col("_change_type") == "update_preimage") & (sf.col("_proc_date") < sf.lit(last_day))
    ).select("order_id")
    cdc = read_table(spark, source_world, "bronze.kafka_orders").where(
        (sf.col("_proc_date") == sf.lit(last_day)) & sf.col("op").isin("u", "d")
    ).select("order_id")
    assert older.join(cdc, "order_id", "left_semi").count() > 0
    for name in GOLD:
        spec = spec_for(name)
        record = read_built_from(root, name)
        assert record is not None
        assert record.incremental == (spec.build.incremental is not None)
        silver = {source: read_table(spark, source_world, source) for source in spec.sources}
        rebuilt = gold_rows(spec, silver, pii_hash_salt(root))
        current = read_table(spark, source_world, name)
        assert (current.count(), current.exceptAll(rebuilt).count(),
                rebuilt.exceptAll(current).count()) == (rebuilt.count(), 0, 0)


def last_merge_changes(spark: SparkSession, world: SourceWorld, name: str) -> DataFrame:
    """The change feed of the table's last MERGE (the last built day's)."""
    path = str(world.root / Path(*name.split(".")))
    merges = [row["version"] for row in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
              if row["operation"] == "MERGE"]
    return (spark.read.format("delta").option("readChangeFeed", "true")
            .option("startingVersion", max(merges)).option("endingVersion", max(merges))
            .load(path))


def test_every_dirty_record_is_quarantined_under_its_rule_and_no_clean_one_is(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    quarantined: dict[str, dict[Any, set[str]]] = {}
    for name in ("silver.fact_orders_quarantine", "silver.fact_events_quarantine",
                 "silver.dim_customer_quarantine"):
        key = {"silver.fact_orders_quarantine": "order_id",
               "silver.fact_events_quarantine": "event_id"}.get(name, "customer_id")
        rules: dict[Any, set[str]] = {}
        for row in table(spark, source_world, name).select(key, "_errors.name").collect():
            rules.setdefault(row[key], set()).update(row["name"])
        quarantined[name] = rules
    expected_keys: dict[str, set[Any]] = {name: set() for name in quarantined}
    for dirt in dirt_of_built_days(source_world, built):
        where = QUARANTINED.get((dirt.source, dirt.kind))
        if where is not None:
            name, _, expected_rules = where
            failed = quarantined[name].get(dirt.key, set())
            assert failed & expected_rules, (dirt, failed)
            expected_keys[name].add(dirt.key)
        if dirt.kind is DirtKind.NULL_KEY and dirt.source in NULL_KEY_RULES:
            name, _, rule = NULL_KEY_RULES[dirt.source]
            assert rule in quarantined[name].get(None, set()), (dirt, name)
    # A clean record is quarantined only as the orphan of a customer whose every CRM state was
    # rejected (the stand-in replaces a customer's clean version with its out-of-set copy).
    with oracle_connection(source_world.data, through=source_world.day(WORLD_DAYS - 1),
                           salt="-") as oracle:
        valid_customers = {row[0] for row in
                           oracle.execute("SELECT customer_id FROM silver_dim_customer").fetchall()}
    crm_dirty = {d.key for d in source_world.data.manifest if d.source == "crm_accounts"}
    for name, rules in quarantined.items():
        for key, failed in rules.items():
            if key is None or key in expected_keys[name]:
                continue
            if name == "silver.dim_customer_quarantine":
                assert key in crm_dirty, (key, failed)
                assert failed == {"lifecycle_stage_in_set"}, (key, failed)
            else:
                assert failed == {"customer_in_dim_customer"}, (name, key, failed)
    for row in table(spark, source_world, "silver.fact_orders_quarantine").where(
        sf.array_contains("_errors.name", "customer_in_dim_customer")
    ).collect():
        if row["order_id"] not in expected_keys["silver.fact_orders_quarantine"]:
            assert row["customer_id"] not in valid_customers, row


def test_unknown_columns_are_split_off_and_the_rows_go_on(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    """Behavior (SELECT *) and Kafka (JSON) deliver unknown fields; Snowflake and the CRM cannot
    hold them (fixed columns, known properties), so their unknown-column dirt never reaches raw."""
    dirty = {source: {d.key for d in dirt_of_built_days(source_world, built)
                      if d.kind is DirtKind.UNKNOWN_COLUMN and d.source == source}
             for source in ("behavior_events", "kafka_order_events")}
    assert all(dirty.values()), dirty
    behavior = table(spark, source_world, "bronze.customer_behavior_unknown_columns")
    assert {row["event_id"] for row in behavior.collect()} >= dirty["behavior_events"]
    kafka = table(spark, source_world, "bronze.kafka_orders_unknown_columns")
    split_offsets = {(row["kafka_partition"], row["kafka_offset"]) for row in kafka.collect()}
    dirty_offsets = {
        (row["kafka_partition"], row["kafka_offset"])
        for row in table(spark, source_world, "bronze.kafka_orders")
        .where(sf.col("order_id").isin(*dirty["kafka_order_events"])).collect()
    }
    assert dirty_offsets
    assert dirty_offsets <= split_offsets
    for split in (behavior, kafka):
        assert {row["field"] for row in split.select(
            sf.explode(sf.map_keys("_unknown_columns")).alias("field")).collect()} == {
            "_debug_flag"}
    # The rows went on without the field: no quarantine rule names it, and they reach silver.
    assert "_debug_flag" not in table(spark, source_world, "bronze.kafka_orders").columns
    in_silver = table(spark, source_world, "silver.fact_events").where(
        sf.col("event_id").isin(*dirty["behavior_events"])).count()
    assert in_silver > 0.8 * len(dirty["behavior_events"])
    drift = sorted(path.name for path in
                   (source_world.root / "_schema_drift").glob("dt=*/*.json"))
    assert set(drift) == {"customer_behavior.json", "kafka_orders.json"}, drift


def test_behavior_evolves_from_v1_to_v2(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    v2_from = source_world.data.config.v2_from
    per_day = {
        row["_proc_date"]: (row["rows"], row["with_v2"])
        for row in table(spark, source_world, "bronze.customer_behavior")
        .groupBy("_proc_date")
        .agg(sf.count(sf.lit(1)).alias("rows"),
             sf.count_if(sf.col("referrer").isNotNull() & sf.col("app_version").isNotNull())
             .alias("with_v2"))
        .collect()
    }
    assert set(per_day) == set(built)
    for day, (rows, with_v2) in per_day.items():
        # The day before v2 ends may already hold a few v2 events past midnight UTC.
        if day < v2_from - timedelta(days=1):
            assert with_v2 == 0, day
        if day > v2_from:
            assert with_v2 > 0.9 * rows, (day, rows, with_v2)


def test_task_counts_conserve_and_reconcile_with_raw(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    last = build_runs(source_world)[-1]
    run_dir = source_world.runs / "build_analytics" / last["run_id"]
    day = date.fromisoformat(last["parameters"]["run_date"])
    values = {task: read_task_values(run_dir, task) for task in BUILD_TASKS
              if task.startswith(("bronze_", "silver_", "gold_")) and "breaker" not in task
              and "fx" not in task}
    raw = {"bronze_snowflake_orders": ("snowflake", "orders"),
           "bronze_kafka_orders": ("kafka", "orders"),
           "bronze_customer_behavior": ("redshift", "behavior"),
           "bronze_crm_accounts": ("crm", "accounts")}
    for task, (source, entity) in raw.items():
        manifest = read_manifest(
            load_dir(raw_zone(StorageRoot(source_world.root)), source, entity, day)
        )
        assert values[task]["rows_in"] == manifest.row_count
        assert values[task]["rows_written"] + values[task]["rows_quarantined"] == manifest.row_count
    assert values["silver_dim_customer"]["rows_in"] == values["bronze_crm_accounts"]["rows_written"]
    assert values["silver_fact_events"]["rows_in"] == (
        values["bronze_customer_behavior"]["rows_written"])
    assert values["silver_fact_orders"]["rows_in"] == (
        values["bronze_snowflake_orders"]["rows_written"]
        + values["bronze_kafka_orders"]["rows_written"])


def test_a_late_crm_update_changes_dim_customer_and_gold(
    source_world: SourceWorld, built: dict[date, dict[str, Any]]
) -> None:
    data = source_world.data
    days = list(built)
    latest: dict[str, Any] = {}
    for version in (v for v in data.crm_accounts if v["available_on"] <= days[-1]):
        current = latest.get(version["customer_id"])
        if current is None or version["last_modified_date"] > current["last_modified_date"]:
            latest[version["customer_id"]] = version
    late = [v for v in late_crm_updates(data)
            if v["available_on"] == days[-1] and latest[v["customer_id"]] is v
            and v["customer_id"] in built[days[-2]]["dim_customer"]]
    assert late, "the generator made no late update arriving on the last day"
    salt = pii_hash_salt(StorageRoot(source_world.root))
    gold_changed = 0
    for version in late:
        modified = version["last_modified_date"].replace(tzinfo=None)
        before = built[days[-2]]["dim_customer"][version["customer_id"]]
        after = built[days[-1]]["dim_customer"][version["customer_id"]]
        assert before["last_modified_date"] < modified
        assert (after["last_modified_date"], after["lifecycle_stage"], after["phone"],
                after["email"]) == (modified, version["lifecycle_stage"], version["phone"],
                                    version["email"])
        hashed = hashlib.sha256(f"{salt}:{version['customer_id']}".encode()).hexdigest()
        gold_after = built[days[-1]]["gold"][hashed]
        assert gold_after["lifecycle_stage"] == version["lifecycle_stage"]
        assert gold_after["phone_masked"].endswith(version["phone"][-2:])
        assert gold_after["email_masked"].endswith("@" + version["email"].split("@")[1])
        gold_changed += gold_after != built[days[-2]]["gold"][hashed]
    assert gold_changed > 0


def test_rerunning_a_day_changes_nothing(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    day = source_world.day(WORLD_DAYS - 1)
    before = contents(spark, source_world, (*SILVER_AND_GOLD, *BRONZE, *FX_GOLD))
    published = warehouse_rows(source_world)
    result, record = source_world.run_job("build_analytics", f"run_date={day}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert contents(spark, source_world, (*SILVER_AND_GOLD, *BRONZE, *FX_GOLD)) == before
    # Gold kept its version, so neither warehouse was written to.
    run_dir = source_world.runs / "build_analytics" / record["run_id"]
    assert [read_task_values(run_dir, task)["skipped"] for task in PUBLISH_TASKS] == [True, True]
    assert warehouse_rows(source_world) == published


def watchdog_events(
    spark: SparkSession, world: SourceWorld, run_id: str
) -> list[tuple[str, str, str, str]]:
    """(dataset, check, kind, status) of each watchdog check a run logged, sorted."""
    events = table(spark, world, "ops.dq_event_log").where(
        (sf.col("event_type") == "watchdog_check") & (sf.col("run_id") == run_id))
    found: list[tuple[str, str, str, str]] = []
    for row in events.collect():
        check = json.loads(row["details"])["watchdog"]
        found.append((row["dataset"], check["check"], check["kind"], check["status"]))
    return sorted(found)


def test_the_watchdog_passes_on_the_built_lakehouse_and_logs_every_check(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    day = source_world.day(WORLD_DAYS - 1)
    result, record = source_world.run_job("dq_watchdog", f"run_date={day}")
    assert result.returncode == 0, result.stdout + result.stderr

    logged = watchdog_events(spark, source_world, record["run_id"])
    # A volume check wants two earlier days with rows (min_history_days); the world's last day
    # has one, so each is skipped, and logged as such. tests/lakehouse/quality/test_watchdog.py
    # passes and fails it on inline days.
    assert [event for event in logged if event[2] != "suite"] == sorted([
        *((table_name, "freshness", "freshness", "passed") for table_name in WATCHED),
        *((table_name, "volume", "volume", "skipped") for table_name in VOLUME_WATCHED),
    ])
    suites = [event for event in logged if event[2] == "suite"]
    assert {event[0] for event in suites} == {*SILVER_AND_GOLD, *FX_GOLD} - {
        "silver.dim_customer_quarantine", "silver.fact_orders_quarantine",
        "silver.fact_events_quarantine", "silver.fx_rates_quarantine"}
    assert {event[3] for event in suites} <= {"passed", "warned"}
    values = read_task_values(source_world.runs / "dq_watchdog" / record["run_id"],
                              "watch_tables")
    assert values["checks"] == len(logged)
    assert values["by_kind"]["freshness"] == {"passed": len(WATCHED), "failed": 0, "warned": 0,
                                              "skipped": 0}


def test_a_stale_lakehouse_breaches_freshness_and_alerts_slack_and_email(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three days without a load: every watched table is past its 26-hour SLA."""
    day = source_world.day(WORLD_DAYS - 1)
    as_of = (datetime.now(UTC) + timedelta(days=3)).isoformat(timespec="seconds")
    with serving_hook() as hook, serving_smtp() as smtp:
        for name, value in alert_secrets(hook.url, smtp.port).items():
            monkeypatch.setenv(name, value)
        result, record = source_world.run_job("dq_watchdog", f"run_date={day}", f"as_of={as_of}")

    assert result.returncode == 1
    assert states(record) == {"watch_tables": "FAILED"}
    [task] = record["tasks"]
    assert task["error_class"] == "ExpectationFailed"
    breached = [line.strip().split(" (observed")[0]
                for line in task["error_message"].splitlines() if "freshness failed" in line]
    assert sorted(breached) == [f"{name}: freshness failed" for name in sorted(WATCHED)]
    assert [event for event in watchdog_events(spark, source_world, record["run_id"])
            if event[2] == "freshness"] == [
        (name, "freshness", "freshness", "failed") for name in sorted(WATCHED)]
    # One DQ-violation alert and one job-failure alert, on both channels.
    subjects = [payload["text"].splitlines()[0] for payload in hook.payloads()]
    assert len(subjects) == 2
    assert subjects[0].startswith("[medallion] DQ violation in dq_watchdog: ")
    assert all(f"{name} (freshness" in subjects[0] for name in WATCHED)
    emails = smtp.mailbox.messages()
    assert [message["Subject"].startswith(prefix) for message, prefix in zip(
        emails, ("[medallion] DQ violation in dq_watchdog", "[medallion] Run of dq_watchdog"),
        strict=True)] == [True, True]


def test_medallion_sql_answers_ad_hoc_queries_on_gold(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    query = ("SELECT customer_id, order_count, lifetime_value_usd FROM gold.fact_customer_360 "
             "ORDER BY customer_id")
    as_json = source_world.medallion("sql", query, "--format", "json", "--limit", "1000000")
    listed = source_world.medallion("sql", "SHOW TABLES IN gold", "--format", "csv")

    assert as_json.returncode == 0, as_json.stderr
    gold = table(spark, source_world, "gold.fact_customer_360").orderBy("customer_id")
    assert json.loads(as_json.stdout) == [
        {"customer_id": row["customer_id"], "order_count": row["order_count"],
         "lifetime_value_usd": str(row["lifetime_value_usd"])}
        for row in gold.collect()
    ]
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "namespace,tableName,isTemporary"
    assert sorted(lines[1:]) == sorted(f"gold,{name.split('.')[1]},False" for name in GOLD)


def test_gold_is_registered_in_glue_when_a_database_is_named(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    day = source_world.day(WORLD_DAYS - 1)
    with glue_server() as endpoint:
        # The tables are built: the condition and the registration are what is tested.
        result, record = source_world.run_job(
            "build_analytics", f"run_date={day}", "glue_database=athena_gold",
            f"glue_endpoint_url={endpoint}", only=("glue_requested", "register_glue"))
        assert result.returncode == 0, result.stdout + result.stderr
        glue = glue_client("us-east-1", endpoint, max_attempts=1)
        found = {t["Name"]: t for t in glue.get_tables(DatabaseName="athena_gold")["TableList"]}

    run_dir = source_world.runs / "build_analytics" / record["run_id"]
    assert read_task_values(run_dir, "register_glue")["registered"] == dict.fromkeys(
        GOLD, "created")
    assert sorted(found) == sorted(name.split(".")[1] for name in GOLD)
    for name in GOLD:
        registered = found[name.split(".")[1]]
        assert registered["Parameters"]["table_type"] == "DELTA"
        assert registered["StorageDescriptor"]["Location"] == str(
            source_world.root.joinpath(*name.split(".")))
        columns = [column["Name"] for column in registered["StorageDescriptor"]["Columns"]]
        assert columns == table(spark, source_world, name).columns


def test_a_warehouse_that_is_down_fails_its_publish_while_the_other_publishes(
    source_world: SourceWorld, built: dict[date, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDALLION_SNOWFLAKE_USER", "analyst")
    monkeypatch.setenv("MEDALLION_SNOWFLAKE_PASSWORD", "never-printed-7x")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    day = source_world.day(WORLD_DAYS - 1)

    result, record = source_world.run_job(
        "build_analytics", f"run_date={day}", f"snowflake_url=http://127.0.0.1:{closed}?account=x",
        only=PUBLISH_TASKS,  # gold is built: publishing is what is tested
    )

    assert result.returncode == 1
    assert (states(record)["publish_snowflake"], states(record)["publish_redshift"]) == (
        "FAILED", "SUCCESS")
    task = next(t for t in record["tasks"] if t["task_key"] == "publish_snowflake")
    assert task["attempts"] == 4
    assert "WarehouseUnavailable" in task["error"], task["error"]
    assert f"127.0.0.1:{closed}" in task["error"], task["error"]
    outbox = (source_world.runs / "_notifications" / "outbox.jsonl").read_text()
    assert "never-printed-7x" not in result.stdout + result.stderr + json.dumps(record) + outbox
    # The alert: the job's failure notification names the warehouse task and why.
    alert = next(line for line in map(json.loads, outbox.splitlines())
                 if line["run_id"] == record["run_id"] and line["event"] == "on_failure"
                 and line["task_key"] is None)
    assert alert["recipients"] == ["data-platform-alerts@example.com"]
    assert "publish_snowflake" in alert["body"], alert["body"]
    assert "WarehouseUnavailable" in alert["body"], alert["body"]


def test_backfill_reproduces_the_same_tables(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    """Drop behavior's bronze and silver tables; a backfill from raw must rebuild them exactly."""
    rebuilt = ("bronze.customer_behavior", "bronze.customer_behavior_unknown_columns",
               "bronze.customer_behavior_quarantine", "silver.fact_events",
               "silver.fact_events_quarantine")
    before = contents(spark, source_world, (*rebuilt, "gold.fact_customer_360"))
    for name in rebuilt:
        shutil.rmtree(source_world.root.joinpath(*name.split(".")))
    first, last = source_world.day(0), source_world.day(WORLD_DAYS - 1)
    result = source_world.medallion("backfill", "customer_behavior", "--from", str(first),
                                    "--to", str(last + timedelta(days=1)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{WORLD_DAYS} of {WORLD_DAYS + 1} dates reprocessed" in result.stdout, result.stdout
    assert contents(spark, source_world, (*rebuilt, "gold.fact_customer_360")) == before


def test_a_breaking_contract_change_fails_bronze_with_a_named_error(
    source_world: SourceWorld, built: dict[date, dict[str, Any]]
) -> None:
    day = source_world.day(WORLD_DAYS - 1) + timedelta(days=5)
    records = [{k: v for k, v in event.items() if k != "event_ts"}
               for event in source_world.raw_records("redshift", "behavior",
                                                     source_world.day(0))[:50]]
    land_records(raw_zone(StorageRoot(source_world.root)), "redshift", "behavior", day, records,
                 source_positions={})
    try:
        result, record = source_world.run_job("build_analytics", f"run_date={day}")
        assert result.returncode == 1
        task = next(t for t in record["tasks"] if t["task_key"] == "bronze_customer_behavior")
        assert task["state"] == "FAILED"
        assert "ContractViolation" in task["error"], task["error"]
        assert "event_ts" in task["error"], task["error"]
        assert states(record)["bronze_dq_breaker"] == "UPSTREAM_FAILED"
        assert states(record)["gold_dq_breaker"] == "UPSTREAM_FAILED"
    finally:
        shutil.rmtree(
            load_dir(raw_zone(StorageRoot(source_world.root)), "redshift", "behavior", day)
        )


def test_a_gold_violation_stops_the_job_and_keeps_the_previous_gold(
    source_world: SourceWorld, spark: SparkSession, built: dict[date, dict[str, Any]]
) -> None:
    """Without the first day's EUR rate, gold cannot convert those orders: it must not publish."""
    first, last = source_world.day(0), source_world.day(WORLD_DAYS - 1)
    gold_before = contents(spark, source_world, ("gold.fact_customer_360", "gold.orders_daily"))
    fx_rates = f"delta.`{source_world.root / 'silver' / 'fx_rates'}`"
    intact = spark.sql(f"DESCRIBE HISTORY {fx_rates} LIMIT 1").collect()[0]["version"]
    spark.sql(f"DELETE FROM {fx_rates} WHERE rate_date = DATE'{first}' AND currency = 'EUR'")
    try:
        # Silver is built (and now broken): gold, its breaker and publishing are what is tested.
        result, record = source_world.run_job(
            "build_analytics", f"run_date={last}",
            only=("gold_fact_customer_360", "gold_orders_daily", "gold_dq_breaker",
                  *PUBLISH_TASKS))
    finally:  # the FX module reads silver.fx_rates next
        spark.sql(f"RESTORE TABLE {fx_rates} TO VERSION AS OF {intact}")
    assert result.returncode == 1
    assert states(record)["gold_fact_customer_360"] == "FAILED"
    error = next(t["error"] for t in record["tasks"] if t["task_key"] == "gold_fact_customer_360")
    assert "every_order_has_usd_rate" in error
    assert states(record)["gold_dq_breaker"] == "UPSTREAM_FAILED"
    assert [states(record)[task] for task in PUBLISH_TASKS] == ["UPSTREAM_FAILED"] * 2
    assert contents(spark, source_world, ("gold.fact_customer_360", "gold.orders_daily")) == (
        gold_before)


def test_no_secret_value_is_in_any_log_notebook_summary_lineage_event_or_mlflow_record(
    source_world: SourceWorld, built: dict[date, dict[str, Any]]
) -> None:
    """Last, after the runs that failed on purpose: every file the runs left, every CLI output.

    The secrets: the salt set above, the alert channels' (the stale-watchdog test's), and what
    the stand-ins generated (their passwords, kept in their own secret stores, skipped here).
    """
    stores = {*(source_world.root / "_system" / "devstack").glob("*/password"),
              *(source_world.root / "_system" / "secrets").glob("*")}
    generated = stored_local_secrets(StorageRoot(source_world.root))
    assert generated  # the PostgreSQL stand-in's password at least
    secrets = {KNOWN_SALT, TOKEN, SMTP_PASSWORD, *generated}
    scanned, leaks = [], []
    for base in (source_world.root, source_world.runs):
        for path in sorted(base.rglob("*")):
            if path.is_file() and path not in stores:
                data = path.read_bytes()
                scanned.append(path.relative_to(base).as_posix())
                leaks += [(str(path), secret) for secret in secrets if secret.encode() in data]
    leaks += [("CLI output", secret) for secret in secrets
              if any(secret in output for output in source_world.outputs)]
    assert leaks == []
    # What must have been scanned: lineage, MLflow, summaries, notebooks, logs, the outbox.
    assert {"_lineage/events.jsonl", "_system/mlflow/mlflow.db",
            "_notifications/outbox.jsonl"} <= set(scanned)
    for pattern in (r"_runs/dt=[-\d]+/build_analytics/.+/run_summary\.json",
                    r"build_analytics/.+/gold_dq_breaker\.ipynb",
                    r"build_analytics/.+/gold_dq_breaker\.html", r"build_analytics/.+/report\.html",
                    r".+\.log"):
        assert any(re.fullmatch(pattern, path) for path in scanned), pattern
