"""The keys a bundle may use, from the vendored bundle schema (Databricks CLI v1.13.0).

Kept as constants so the semantic checks run without the schema file; a test compares them with
the vendored schema whenever it is present.
"""

from __future__ import annotations

TOP_LEVEL_KEYS = frozenset(
    [
        "artifacts",
        "bundle",
        "environments",
        "experimental",
        "include",
        "permissions",
        "presets",
        "python",
        "resources",
        "run_as",
        "scripts",
        "sync",
        "targets",
        "variables",
        "workspace",
    ]
)
DEPRECATED_TOP_LEVEL_KEYS = {"environments": "targets"}

TARGET_KEYS = frozenset(
    [
        "artifacts",
        "bundle",
        "cluster_id",
        "compute_id",
        "default",
        "git",
        "mode",
        "permissions",
        "presets",
        "resources",
        "run_as",
        "sync",
        "variables",
        "workspace",
    ]
)

VARIABLE_KEYS = frozenset({"default", "description", "lookup", "type"})

JOB_KEYS = frozenset(
    [
        "budget_policy_id",
        "continuous",
        "description",
        "email_notifications",
        "environments",
        "git_source",
        "health",
        "job_clusters",
        "lifecycle",
        "max_concurrent_runs",
        "name",
        "notification_settings",
        "parameters",
        "parent_path",
        "performance_target",
        "permissions",
        "queue",
        "run_as",
        "schedule",
        "tags",
        "tasks",
        "timeout_seconds",
        "trigger",
        "triggers",
        "usage_policy_id",
        "webhook_notifications",
    ]
)

TASK_TYPES = frozenset(
    [
        "ai_runtime_task",
        "alert_task",
        "clean_rooms_notebook_task",
        "condition_task",
        "dashboard_task",
        "dbt_cloud_task",
        "dbt_platform_task",
        "dbt_task",
        "for_each_task",
        "gen_ai_compute_task",
        "notebook_task",
        "pipeline_task",
        "power_bi_task",
        "python_operator_task",
        "python_wheel_task",
        "run_job_task",
        "spark_jar_task",
        "spark_python_task",
        "spark_submit_task",
        "sql_task",
    ]
)

TASK_KEYS = TASK_TYPES | frozenset(
    [
        "compute",
        "depends_on",
        "description",
        "disable_auto_optimization",
        "disabled",
        "email_notifications",
        "environment_key",
        "existing_cluster_id",
        "health",
        "job_cluster_key",
        "libraries",
        "max_retries",
        "min_retry_interval_millis",
        "new_cluster",
        "notification_settings",
        "retry_on_timeout",
        "run_if",
        "task_key",
        "timeout_seconds",
        "webhook_notifications",
    ]
)

# Unity Catalog schemas (`resources.schemas`) and their grants: bundles/roles.yml declares roles.
SCHEMA_KEYS = frozenset(
    [
        "catalog_name",
        "comment",
        "custom_max_retention_hours",
        "grants",
        "lifecycle",
        "name",
        "properties",
        "storage_root",
    ]
)

GRANT_KEYS = frozenset({"principal", "privileges"})

PRIVILEGES = frozenset(
    [
        "ACCESS",
        "ALL_PRIVILEGES",
        "APPLY_TAG",
        "BROWSE",
        "CREATE",
        "CREATE_CATALOG",
        "CREATE_CLEAN_ROOM",
        "CREATE_CONNECTION",
        "CREATE_EXTERNAL_LOCATION",
        "CREATE_EXTERNAL_TABLE",
        "CREATE_EXTERNAL_VOLUME",
        "CREATE_FOREIGN_CATALOG",
        "CREATE_FOREIGN_SECURABLE",
        "CREATE_FUNCTION",
        "CREATE_MANAGED_STORAGE",
        "CREATE_MATERIALIZED_VIEW",
        "CREATE_MODEL",
        "CREATE_PROVIDER",
        "CREATE_RECIPIENT",
        "CREATE_SCHEMA",
        "CREATE_SERVICE_CREDENTIAL",
        "CREATE_SHARE",
        "CREATE_STORAGE_CREDENTIAL",
        "CREATE_TABLE",
        "CREATE_VIEW",
        "CREATE_VOLUME",
        "EXECUTE",
        "EXECUTE_CLEAN_ROOM_TASK",
        "EXTERNAL_USE_SCHEMA",
        "MANAGE",
        "MANAGE_ALLOWLIST",
        "MODIFY",
        "MODIFY_CLEAN_ROOM",
        "READ_FILES",
        "READ_METADATA",
        "READ_PRIVATE_FILES",
        "READ_VOLUME",
        "REFRESH",
        "SELECT",
        "SET_SHARE_PERMISSION",
        "USAGE",
        "USE_CATALOG",
        "USE_CONNECTION",
        "USE_MARKETPLACE_ASSETS",
        "USE_PROVIDER",
        "USE_RECIPIENT",
        "USE_SCHEMA",
        "USE_SHARE",
        "WRITE_FILES",
        "WRITE_PRIVATE_FILES",
        "WRITE_VOLUME",
    ]
)

DEPENDENCY_KEYS = frozenset({"task_key", "outcome"})
FOR_EACH_KEYS = frozenset({"inputs", "task", "concurrency"})

RUN_IF_VALUES = (
    "ALL_SUCCESS",
    "AT_LEAST_ONE_SUCCESS",
    "NONE_FAILED",
    "ALL_DONE",
    "AT_LEAST_ONE_FAILED",
    "ALL_FAILED",
)
OUTCOME_VALUES = ("true", "false")

# Roots of Jobs-service dynamic value references (`{{job.id}}`, `{{tasks.t.values.v}}`, ...),
# including the deprecated flat forms (`{{run_id}}`, `{{start_date}}`, ...).
DYNAMIC_ROOTS = frozenset(
    [
        "job",
        "task",
        "tasks",
        "input",
        "workspace",
        "backfill",
        "run_id",
        "job_id",
        "parent_run_id",
        "task_key",
        "task_retry_count",
        "start_date",
        "start_time",
    ]
)
