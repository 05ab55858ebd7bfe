"""dlt-meta onboarding generated from config/dq, checked by dlt-meta itself.

The main test runs dlt-meta's real onboarding entry point (its wheel's ``run``, with the
onboarding job's own named parameters) over the generated files, then reads the dataflow-spec
tables back through dlt-meta's pipeline-side reader, configured as the pipeline resource
configures it. What the tables must hold is computed here from the YAML specs and contracts
as written, not from the generator's output.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from databricks.labs.sdp_meta import __main__ as dlt_meta_run
from databricks.labs.sdp_meta.dataflow_spec import DataflowSpecUtils
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.types import BooleanType, IntegerType, StructField, StructType
from pyspark.testing import assertDataFrameEqual
from typer.testing import CliRunner

from medallion.lakehouse.dltmeta import (
    DltMetaTarget,
    LeftOut,
    UnsupportedByDltMeta,
    build_onboarding,
    write_onboarding,
)
from medallion.lakehouse.dltmeta.expectations import dqe_for, quarantine_predicate
from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.quality import Action, Checks, Expectation, Lookup, TableSpec, load_specs
from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.spark import local_frame
from medallion.platform.cli import app

CATALOG = "medallion_test"
ENV = "test"
DATABASE = "dlt_meta_onboarding_test"  # private to this module: the session is shared
PIPELINE_FILE = repo_root() / "resources" / "bronze_silver.pipeline.yml"
METADATA_COLUMNS = {
    "_source_file": "_metadata.file_path",
    "_ingest_ts": "_metadata.file_modification_time",
    "_proc_date": "load_dt",
}
QUARANTINE_GROUPS = ("expect_or_quarantine", "expect_all_or_quarantine")
DQE_GROUPS = {
    "expect": ("expect", "expect_all"),
    "expect_or_drop": ("expect_or_drop", "expect_all_or_drop", *QUARANTINE_GROUPS),
    "expect_or_fail": ("expect_or_fail", "expect_all_or_fail"),
}


def pipeline_resources() -> dict[str, Any]:
    """The pipeline and the dev onboarding job, as the pipeline file declares them."""
    document = yaml.safe_load(PIPELINE_FILE.read_text(encoding="utf-8"))
    return {
        "pipeline": document["resources"]["pipelines"]["bronze_silver"],
        "job": document["targets"]["dev"]["resources"]["jobs"]["dlt_meta_onboard"],
    }


def specs_as_written() -> dict[str, dict[str, Any]]:
    """Every bronze and silver spec file, parsed as plain YAML, by dataset."""
    documents = [
        yaml.safe_load(path.read_text(encoding="utf-8"))
        for layer in ("bronze", "silver")
        for path in sorted((repo_root() / "config" / "dq" / layer).glob("*.yml"))
    ]
    return {document["dataset"]: document for document in documents}


def contract_as_written(table: str) -> dict[str, Any]:
    path = repo_root() / "config" / "schema_definitions" / "bronze" / f"{table}.schema.json"
    content: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return content


def expected_dqe(spec: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Our groups by dlt-meta action; quarantine rules also dropped; lookup-reading rules out."""
    lookups = [lookup["name"] for lookup in spec.get("lookups") or []]
    groups = {
        group: {
            name: predicate
            for name, predicate in (rules or {}).items()
            if not any(re.search(rf"\b{lookup}\b", predicate) for lookup in lookups)
        }
        for group, rules in (spec.get("expectations") or {}).items()
    }
    dqe = {
        dlt_group: {name: p for group in ours for name, p in groups.get(group, {}).items()}
        for dlt_group, ours in DQE_GROUPS.items()
    }
    quarantined = [p for group, rules in groups.items() if group in QUARANTINE_GROUPS
                   for p in rules.values()]
    if quarantined:
        rule = "NOT coalesce(" + " AND ".join(f"({p})" for p in quarantined) + ", false)"
        dqe["expect_or_quarantine"] = {"fails_a_quarantine_rule": rule}
    return {group: rules for group, rules in dqe.items() if rules}


def expected_quarantine(spec: dict[str, Any]) -> dict[str, str]:
    if not expected_dqe(spec).get("expect_or_quarantine"):
        return {}
    schema, table = spec.get("quarantine_table", f"{spec['dataset']}_quarantine").split(".")
    return {"catalog": CATALOG, "database": schema, "table": table}


def expected_bronze(spec: dict[str, Any], root: Path) -> dict[str, Any]:
    table = spec["dataset"].split(".")[1]
    columns = contract_as_written(table)["properties"]
    renames = {name: column["x-source-name"] for name, column in columns.items()
               if "x-source-name" in column and "x-source-format" not in column}
    raw_fields = [
        (column.get("x-source-name", name),
         "bigint" if column.get("x-source-format") == "epoch_millis" else column["x-spark-type"])
        for name, column in columns.items()
    ]
    return {
        "sourceFormat": "cloudFiles",
        "path": f"{root}/{spec['sources'][0]}",
        "select_metadata_cols": {**METADATA_COLUMNS, **renames},
        "schema": [*raw_fields, ("load_dt", "date")],
        "target": {"catalog": CATALOG, "database": "bronze", "table": table},
        "partitionColumns": ["_proc_date"],
        "dqe": expected_dqe(spec),
        "quarantine": expected_quarantine(spec),
    }


def expected_silver(spec: dict[str, Any]) -> dict[str, Any]:
    transformations = spec.get("transformations") or {}
    return {
        "source": {"catalog": CATALOG, "database": "bronze",
                   "table": spec["sources"][0].split(".")[1]},
        "target": {"catalog": CATALOG, "database": "silver",
                   "table": spec["dataset"].split(".")[1]},
        "selectExp": transformations.get("select_exp") or ["*"],
        "whereClause": transformations.get("where_clause") or [],
        "cdc": (spec["keys"], spec["sequence_by"], "1"),
        "dqe": expected_dqe(spec),
        "quarantine": expected_quarantine(spec),
    }


def named(details: Any) -> dict[str, str]:
    """Where a table is: its catalog, database and table (dlt-meta adds layout keys)."""
    return {key: details[key] for key in ("catalog", "database", "table") if key in details}


def read_back(spark: SparkSession, layer: str, configuration: dict[str, str]) -> list[Any]:
    """The dataflow specs of ``layer`` as the pipeline's launcher reads them."""
    keys = ["layer", f"{layer}.group", f"{layer}.dataflowspecTable"]
    for key in keys:
        spark.conf.set(key, configuration[key])
    try:
        specs = (DataflowSpecUtils.get_bronze_dataflow_spec(spark) if layer == "bronze"
                 else DataflowSpecUtils.get_silver_dataflow_spec(spark))
    finally:
        for key in keys:
            spark.conf.unset(key)
    return list(specs)


@pytest.fixture(scope="module")
def onboarded(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[Path, dict[str, list[Any]]]]:
    """Generate into a storage root, run dlt-meta's ``run`` as the job does, read specs back."""
    root = tmp_path_factory.mktemp("dlt-meta")
    target = DltMetaTarget(CATALOG, env=ENV, storage_root=str(root))
    write_onboarding(build_onboarding(load_specs().values(), target), root / "dlt_meta")
    resources = pipeline_resources()
    parameters = dict(resources["job"]["tasks"][0]["python_wheel_task"]["named_parameters"])
    resolved = {
        **{key: str(value).replace("${var.storage_root}", str(root))
           .replace("${bundle.target}", ENV) for key, value in parameters.items()},
        "database": DATABASE,  # the job's is <catalog>.ops: a workspace catalog
    }
    configuration = {
        key: str(value).replace("${var.catalog}.ops", DATABASE)
        for key, value in resources["pipeline"]["configuration"].items()
    }
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    argv = ["run", *(f"--{key}={value}" for key, value in resolved.items())]
    app_name = spark.conf.get("spark.app.name")
    assert app_name is not None, "a running session always has spark.app.name"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "argv", argv)
            dlt_meta_run.main()  # its builder.appName(...).getOrCreate() renames the session
        yield root, {layer: read_back(spark, layer, configuration)
                     for layer in ("bronze", "silver")}
    finally:
        SparkSession.builder.appName(app_name).getOrCreate()
        spark.sql(f"DROP DATABASE IF EXISTS {DATABASE} CASCADE")


def test_dlt_meta_onboards_our_bronze_tables_with_exactly_their_rules(
    onboarded: tuple[Path, dict[str, list[Any]]],
) -> None:
    root, specs = onboarded
    actual = {
        spec.dataFlowId: {
            "sourceFormat": spec.sourceFormat,
            "path": spec.sourceDetails["path"],
            "select_metadata_cols": json.loads(
                spec.sourceDetails["source_metadata"])["select_metadata_cols"],
            "schema": [(field.name, field.dataType.simpleString())
                       for field in StructType.fromJson(json.loads(spec.schema)).fields],
            "target": named(spec.targetDetails),
            "partitionColumns": spec.partitionColumns,
            "dqe": json.loads(spec.dataQualityExpectations),
            "quarantine": named(spec.quarantineTargetDetails),
        }
        for spec in specs["bronze"]
    }

    expected = {dataset: expected_bronze(spec, root)
                for dataset, spec in specs_as_written().items() if spec["layer"] == "bronze"}
    assert actual == expected


def test_dlt_meta_onboards_each_single_source_silver_table_with_exactly_its_rules(
    onboarded: tuple[Path, dict[str, list[Any]]],
) -> None:
    _, specs = onboarded
    actual = {}
    for spec in specs["silver"]:
        cdc = DataflowSpecUtils.get_cdc_apply_changes(spec.cdcApplyChanges)
        actual[spec.dataFlowId] = {
            "source": named(spec.sourceDetails),
            "target": named(spec.targetDetails),
            "selectExp": spec.selectExp,
            "whereClause": spec.whereClause,
            "cdc": (cdc.keys, cdc.sequence_by, cdc.scd_type),
            "dqe": json.loads(spec.dataQualityExpectations),
            "quarantine": named(spec.quarantineTargetDetails),
        }

    written = specs_as_written()
    expected = {
        dataset: expected_silver(spec)
        for dataset, spec in written.items()
        if spec["layer"] == "silver" and len(spec["sources"]) == 1 and spec["sources"][0] in written
    }
    assert actual == expected
    assert "silver.fact_orders" not in actual  # two sources: left out, see the next tests


def test_the_pipeline_reads_the_tables_and_files_the_onboarding_job_writes() -> None:
    resources = pipeline_resources()
    parameters = resources["job"]["tasks"][0]["python_wheel_task"]["named_parameters"]
    configuration = resources["pipeline"]["configuration"]

    assert parameters["onboard_layer"] == configuration["layer"] == "bronze_silver"
    assert parameters["onboarding_file_path"] == "${var.storage_root}/dlt_meta/onboarding.json"
    assert parameters["env"] == "${bundle.target}"
    for layer in ("bronze", "silver"):
        table = parameters[f"{layer}_dataflowspec_table"]
        assert configuration[f"{layer}.dataflowspecTable"] == f"{parameters['database']}.{table}"
        assert configuration[f"{layer}.group"] == DltMetaTarget(CATALOG).group
    assert DltMetaTarget(CATALOG, storage_root="/r").file_path("onboarding.json") == (
        "/r/dlt_meta/onboarding.json"
    )


def test_every_feature_without_a_dlt_meta_equivalent_is_listed_or_refused_when_strict() -> None:
    bronze = TableSpec(dataset="bronze.crm_accounts", layer="bronze",
                       sources=("raw/crm/accounts",), checks=Checks(min_rows=1, max_rows=9))
    silver = TableSpec(
        dataset="silver.dim_customer", layer="silver", sources=("bronze.crm_accounts",),
        keys=("customer_id",),
        lookups=(Lookup("known", "silver.other", ("customer_id",)),),
        expectations=(Expectation("id_present", "customer_id IS NOT NULL", Action.QUARANTINE),
                      Expectation("is_known", "known AND customer_id <> ''", Action.DROP)),
    )
    unified = TableSpec(dataset="silver.fact_orders", layer="silver",
                        sources=("bronze.crm_accounts", "bronze.kafka_orders"))
    gold = TableSpec(dataset="gold.orders_daily", layer="gold", sources=("silver.fact_orders",))
    target = DltMetaTarget(CATALOG)

    onboarding = build_onboarding([gold, unified, silver, bronze], target)

    assert [(item.dataset, item.feature) for item in onboarding.left_out] == [
        ("bronze.crm_accounts", "checks.min_rows"),
        ("bronze.crm_accounts", "checks.max_rows"),
        ("silver.dim_customer", "lookups.known"),
        ("silver.dim_customer", "rule is_known (expect_or_drop)"),
        ("silver.dim_customer", "keys"),
        ("silver.fact_orders", "sources"),
        ("gold.orders_daily", "layer gold"),
    ]
    assert [row["data_flow_id"] for row in onboarding.rows] == [
        "bronze.crm_accounts", "silver.dim_customer"
    ]
    assert onboarding.files["dqe/silver/dim_customer.json"]["expect_or_drop"] == {
        "id_present": "customer_id IS NOT NULL"
    }
    with pytest.raises(UnsupportedByDltMeta) as refused:
        build_onboarding([gold, unified, silver, bronze], target, strict=True)
    assert all(str(item) in str(refused.value) for item in onboarding.left_out)


def test_a_spec_that_maps_whole_onboards_under_strict() -> None:
    bronze = TableSpec(dataset="bronze.crm_accounts", layer="bronze",
                       sources=("raw/crm/accounts",))

    onboarding = build_onboarding([bronze], DltMetaTarget(CATALOG), strict=True)

    assert onboarding.left_out == ()
    assert onboarding.files["schemas/bronze/crm_accounts.ddl"].endswith("`load_dt` date")


def test_expect_all_forms_land_in_their_plain_group_and_quarantine_rules_are_also_dropped() -> None:
    dqe = dqe_for([
        Expectation("a", "x > 0", Action.WARN),  # written under expect
        Expectation("b", "y > 0", Action.WARN),  # written under expect_all
        Expectation("c", "z IS NOT NULL", Action.QUARANTINE),
        Expectation("d", "z < 9", Action.QUARANTINE),
        Expectation("e", "w = 1", Action.FAIL),
    ])

    assert dqe == {
        "expect": {"a": "x > 0", "b": "y > 0"},
        "expect_or_drop": {"c": "z IS NOT NULL", "d": "z < 9"},
        "expect_or_fail": {"e": "w = 1"},
        "expect_or_quarantine": {
            "fails_a_quarantine_rule": "NOT coalesce((z IS NOT NULL) AND (z < 9), false)"
        },
    }


def test_the_quarantine_rule_holds_exactly_for_rows_failing_a_rule_null_counting_as_failing(
    spark: SparkSession,
) -> None:
    schema = StructType([StructField("z", IntegerType())])
    rows = local_frame(spark, [(1,), (12,), (None,)], schema)

    flagged = rows.withColumn(
        "quarantined", sf.expr(quarantine_predicate(["z IS NOT NULL", "z < 9"]))
    )

    expected = spark.createDataFrame(
        [(1, False), (12, True), (None, True)],
        StructType([*schema.fields, StructField("quarantined", BooleanType(), False)]),
    )
    assertDataFrameEqual(flagged, expected)


def test_a_target_refuses_a_catalog_that_is_no_identifier() -> None:
    with pytest.raises(ConfigError, match="dlt-meta catalog 'my-catalog'"):
        DltMetaTarget("my-catalog")


def test_the_cli_writes_the_onboarding_removes_stale_files_and_lists_what_is_left_out(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out"
    stale = output / "dqe" / "silver" / "dropped_table.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")

    result = CliRunner().invoke(app, [
        "dlt-meta", "onboard", "--catalog", CATALOG, "--env", ENV,
        "--storage-root", str(tmp_path), "--output", str(output),
    ])

    assert result.exit_code == 0, result.output
    rows = json.loads((output / "onboarding.json").read_text())
    assert rows[0]["source_details"][f"source_path_{ENV}"] == f"{tmp_path}/raw/crm/accounts"
    assert not stale.exists()
    left_out = [LeftOut(**item) for item in json.loads((output / "left_out.json").read_text())]
    assert f"left out: {left_out[0]}" in result.output
