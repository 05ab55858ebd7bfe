"""The repository's own bundle: valid offline, and its jobs are what the runner expects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medallion.lakehouse.settings import repo_root
from medallion.platform.bundle import load_bundle, validate_bundle
from medallion.platform.jobs.model import NotificationEvent, RunJob, parse_job

NOTEBOOK_JOBS = ("build_analytics", "ingest_daily_sources", "dq_watchdog")
INGEST_LOOPS = ("ingest_snowflake_orders", "ingest_redshift_behavior", "ingest_crm_accounts",
                "ingest_kafka_orders", "ingest_fx_rates")


PROD_RUN_AS_WARNING = (
    "bundles/targets.yml:{line}: targets.prod.run_as.service_principal_name: target 'prod' runs "
    "in production mode, but its jobs run as no principal: expected "
    "run_as.service_principal_name (var prod_service_principal: --var, or env "
    "BUNDLE_VAR_prod_service_principal), found none [target 'prod']"
)


def prod_run_as_line() -> int:
    lines = (repo_root() / "bundles" / "targets.yml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if "service_principal_name:" in line)


def test_bundle_passes_the_official_models_and_semantic_checks_in_every_target() -> None:
    # Only the reminder that prod's service principal is set per workspace.
    assert [str(issue) for issue in validate_bundle(repo_root())] == [
        PROD_RUN_AS_WARNING.format(line=prod_run_as_line())
    ]


def test_prod_validates_clean_once_its_service_principal_is_set() -> None:
    issues = validate_bundle(repo_root(), "prod", variables={"prod_service_principal": "abc"})

    assert [str(issue) for issue in issues] == []


def test_dev_runs_serverless_and_prod_on_a_pinned_job_cluster_with_the_wheel() -> None:
    import pyspark

    dev, prod = (load_bundle(repo_root(), target) for target in ("dev", "prod"))
    for job in (dev.jobs[key] for key in NOTEBOOK_JOBS):
        assert "job_clusters" not in job
        assert [t["task_key"] for t in job["tasks"] if "job_cluster_key" in t
                or "libraries" in t] == []
    for key in NOTEBOOK_JOBS:
        job = prod.jobs[key]
        (cluster,) = job["job_clusters"]
        runtime = cluster["new_cluster"]["spark_version"]
        assert runtime == "17.3.x-scala2.13"  # DBR 17.3 LTS: Spark 4.0
        assert pyspark.__version__.split(".")[0] == "4"
        for task in job["tasks"]:
            runs = task.get("for_each_task", {}).get("task", task)
            if "notebook_task" not in runs:
                assert "job_cluster_key" not in runs, (key, task["task_key"])
                continue
            assert runs["job_cluster_key"] == "main", (key, task["task_key"])
            assert runs["libraries"] == [{"whl": str(repo_root() / "dist" / "*.whl")}] or \
                runs["libraries"] == [{"whl": "../dist/*.whl"}], runs["libraries"]


def test_every_job_passes_catalog_and_wheel_and_the_wheel_is_the_one_the_build_makes() -> None:
    import tomllib

    version = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]["version"]
    for target in ("local", "dev", "prod"):
        bundle = load_bundle(repo_root(), target)
        for key in NOTEBOOK_JOBS:
            parameters = {p["name"]: p["default"] for p in bundle.jobs[key]["parameters"]}
            expected = {
                "local": ("", ""),
                "dev": ("medallion_dev", bundle.variables["wheel"]),
                "prod": ("medallion", bundle.variables["wheel"]),
            }[target]
            assert (parameters["catalog"], parameters["wheel"]) == expected, (target, key)
        if target != "local":
            assert bundle.variables["wheel"].endswith(
                f"/dist/medallion_lakehouse-{version}-py3-none-any.whl")


def test_bundle_passes_the_vendored_json_schema_too() -> None:
    schema = repo_root().parent / "shared" / "vendor" / "databricks-bundle-schema.json"
    if not schema.is_file():
        pytest.skip(f"vendored bundle schema not beside the checkout ({schema}): not run")

    issues = validate_bundle(repo_root(), schema_path=schema,
                             variables={"prod_service_principal": "abc"})

    assert [str(issue) for issue in issues] == []


def test_every_target_resolves_its_storage_root() -> None:
    roots = {target: load_bundle(repo_root(), target).variables["storage_root"]
             for target in ("local", "dev", "prod")}

    assert roots == {
        "local": str(repo_root() / ".lakehouse"),
        "dev": "/Volumes/medallion_dev/lakehouse/files",
        "prod": "/Volumes/medallion/lakehouse/files",
    }


def test_runner_parses_every_job() -> None:
    bundle = load_bundle(repo_root())

    jobs = {key: parse_job(key, raw) for key, raw in bundle.jobs.items()}

    assert {key: [t.task_key for t in job.tasks] for key, job in jobs.items()} == {
        "ingest_daily_sources": ["plan_load_dates", "full_reload", "reset_incremental_positions",
                                 *INGEST_LOOPS, "check_landed_files",
                                 "record_source_positions", "has_new_rows", "build_analytics"],
        "build_analytics": [
            "check_raw_files", "has_raw_files",
            "bronze_snowflake_orders", "bronze_kafka_orders", "bronze_customer_behavior",
            "bronze_crm_accounts", "bronze_fx_rates", "bronze_dq_breaker",
            "silver_dim_customer", "silver_fact_orders", "silver_fact_events",
            "silver_fx_rates", "silver_dq_breaker",
            "gold_fact_customer_360", "gold_orders_daily", "gold_fx_daily_change",
            "gold_dq_breaker", "publish_snowflake", "publish_redshift",
            "glue_requested", "register_glue", "record_build",
        ],
        "dq_watchdog": ["watch_tables"],
    }
    assert jobs["ingest_daily_sources"].health_rules[0].value == 1800
    assert jobs["build_analytics"].health_rules[0].value == 3600
    assert jobs["dq_watchdog"].health_rules[0].value == 900


def test_the_watchdog_runs_hourly_when_deployed() -> None:
    raw = load_bundle(repo_root()).jobs["dq_watchdog"]
    assert raw["schedule"] == {"quartz_cron_expression": "0 0 * * * ?", "timezone_id": "UTC",
                               "pause_status": "UNPAUSED"}


def test_ingest_runs_five_retried_loops_in_parallel_then_counts_what_landed() -> None:
    job = parse_job("ingest_daily_sources", load_bundle(repo_root()).jobs["ingest_daily_sources"])

    for key in INGEST_LOOPS:
        loop = job.task(key)
        assert loop.for_each is not None, key
        assert loop.for_each.inputs == "{{tasks.plan_load_dates.values.load_dates}}"
        assert loop.for_each.concurrency == 1  # incremental sources advance day by day
        nested = loop.for_each.task
        assert (nested.max_retries, nested.min_retry_interval_millis) == (3, 2000)
        assert nested.base_parameters["load_date"] == "{{input}}"
        assert {d.task_key for d in loop.depends_on} <= {"plan_load_dates",
                                                          "reset_incremental_positions"}
    check = job.task("check_landed_files")
    assert [d.task_key for d in check.depends_on] == list(INGEST_LOOPS)
    assert check.run_if.value == "ALL_DONE"
    # A leaf that needs every source: an outage fails the run (not SUCCESS_WITH_FAILURES).
    leaf = job.task("record_source_positions")
    assert [d.task_key for d in leaf.depends_on] == list(INGEST_LOOPS)
    assert leaf.run_if.value == "ALL_SUCCESS"
    assert not job.downstream_of("record_source_positions")
    warning = NotificationEvent.ON_DURATION_WARNING
    assert job.notifications.destinations(warning)[0] == ("data-platform-alerts@example.com",)
    assert job.parameters["load_mode"] == "incremental"
    gate = job.task("has_new_rows")
    assert gate.condition is not None
    assert (gate.condition.op.value, gate.condition.left, gate.condition.right) == (
        "GREATER_THAN", "{{tasks.check_landed_files.values.new_loads}}", "0")
    assert [d.task_key for d in gate.depends_on] == ["check_landed_files"]
    build = job.task("build_analytics")
    assert [(d.task_key, d.outcome) for d in build.depends_on] == [("has_new_rows", "true")]
    assert build.for_each is not None
    assert build.for_each.task.run_job == RunJob(
        "build_analytics",
        {"run_date": "{{input}}", "storage_root": "{{job.parameters.storage_root}}",
         "catalog": "{{job.parameters.catalog}}", "wheel": "{{job.parameters.wheel}}"},
    )


def test_cli_exits_non_zero_and_names_the_failed_task(tmp_path: Path) -> None:
    bundle = repo_root() / "tests" / "platform" / "jobs" / "fixture_bundle"
    result = subprocess.run(
        [sys.executable, "-m", "medallion", "jobs", "run", "failure_job", "--compute", "cold",
         "--bundle-root", str(bundle), "--runs-root", str(tmp_path / "runs"),
         "--param", f"marker_dir={tmp_path / 'markers'}"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )

    assert result.returncode == 1
    assert (f"task 'breaks' FAILED after 1 attempt(s): notebook "
            f"{bundle / 'notebooks' / 'fail.ipynb'}, cell 3 (execution count 3): "
            "ValueError: the source table is empty") in result.stderr
    assert "task 'downstream' did not run" in result.stderr


def test_gold_is_published_to_each_warehouse_by_its_own_retried_task_after_the_breaker() -> None:
    job = parse_job("build_analytics", load_bundle(repo_root()).jobs["build_analytics"])

    for warehouse, target in (("snowflake", "ANALYTICS.FACT_CUSTOMER_360"),
                              ("redshift", "redshift_analytics.gold_customer_360")):
        task = job.task(f"publish_{warehouse}")
        assert [d.task_key for d in task.depends_on] == ["gold_dq_breaker"]
        assert task.notebook_path == repo_root() / "notebooks" / "serve" / "publish_gold.ipynb"
        assert task.base_parameters == {
            "gold_table": "gold.fact_customer_360", "warehouse": warehouse, "target": target,
            "warehouse_url": f"{{{{job.parameters.{warehouse}_url}}}}",
        }
        assert (task.max_retries, task.min_retry_interval_millis) == (3, 2000)


def test_gold_is_registered_in_glue_only_when_the_target_names_a_database() -> None:
    bundle = load_bundle(repo_root())
    job = parse_job("build_analytics", bundle.jobs["build_analytics"])

    condition = job.task("glue_requested")
    assert [d.task_key for d in condition.depends_on] == ["gold_dq_breaker"]
    assert condition.condition is not None
    assert (condition.condition.op.value, condition.condition.left, condition.condition.right) == (
        "NOT_EQUAL", "{{job.parameters.glue_database}}", "")
    register = job.task("register_glue")
    assert [(d.task_key, d.outcome) for d in register.depends_on] == [("glue_requested", "true")]
    assert register.notebook_path == repo_root() / "notebooks" / "serve" / "register_glue.ipynb"
    assert register.base_parameters == {
        "tables": "gold.fact_customer_360,gold.orders_daily,gold.fx_daily_change",
        "glue_database": "{{job.parameters.glue_database}}", "glue_region": "us-east-1",
        "glue_endpoint_url": "{{job.parameters.glue_endpoint_url}}", "location_root": "",
    }
    assert job.parameters["glue_database"] == ""  # the local default: no registration


def test_a_build_is_recorded_last_when_nothing_before_it_failed() -> None:
    job = parse_job("build_analytics", load_bundle(repo_root()).jobs["build_analytics"])

    record = job.task("record_build")

    assert [(d.task_key, d.outcome) for d in record.depends_on] == [
        ("publish_snowflake", None), ("publish_redshift", None), ("register_glue", None)]
    assert record.run_if.value == "NONE_FAILED"  # register_glue is left out locally
    assert record.notebook_path == repo_root() / "notebooks" / "serve" / "record_build.ipynb"
    assert record.base_parameters == {"run_id": "{{job.run_id}}"}
    assert [t.task_key for t in job.tasks if not job.downstream_of(t.task_key)] == [
        "record_build"]
