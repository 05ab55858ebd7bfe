"""The roles enforced on real Delta tables: Lakehouse.read, medallion sql --role, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import Row, SparkSession

from medallion.lakehouse.errors import AccessDenied, ConfigError
from medallion.lakehouse.governance import ROLE_ENV, Roles
from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse
from medallion.platform.sql import query_rows
from tests.lakehouse.governance.conftest import MATRIX, READABLE


@pytest.fixture(scope="module")
def storage_root(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One one-row table per layer, `<layer>.roles_probe`, whose row names its layer."""
    root = tmp_path_factory.mktemp("roles")
    writer = Lakehouse.open(spark, StorageRoot(root))
    for layer in ("bronze", "silver", "gold"):
        writer.write(local_frame(spark, [(layer,)], "layer string"), f"{layer}.roles_probe")
    return root


def _denied(role: str, table: str) -> str:
    return (
        f"role {role!r} may not read {table}: it may read schemas "
        f"{', '.join(READABLE[role])} (grants in bundles/roles.yml)"
    )


@pytest.mark.parametrize(("role", "schema"), MATRIX)
def test_lakehouse_read_follows_the_matrix(
    spark: SparkSession, storage_root: Path, roles: Roles, role: str, schema: str
) -> None:
    lakehouse = Lakehouse(spark, StorageRoot(storage_root), role=role, roles=roles)
    table = f"{schema}.roles_probe"

    if schema in READABLE[role]:
        assert lakehouse.read(table).collect() == [Row(layer=schema)]
    else:
        with pytest.raises(AccessDenied) as denied:
            lakehouse.read(table)
        assert str(denied.value) == _denied(role, table)


@pytest.mark.parametrize(("role", "schema"), MATRIX)
def test_sql_with_a_role_follows_the_matrix(
    spark: SparkSession, storage_root: Path, roles: Roles, role: str, schema: str
) -> None:
    lakehouse = Lakehouse.open(spark, StorageRoot(storage_root))
    lakehouse.read(f"{schema}.roles_probe")  # registered here
    query = f"SELECT layer FROM {schema}.roles_probe"

    if schema in READABLE[role]:
        assert query_rows(spark, query, role=role, roles=roles) == (["layer"], [(schema,)])
    else:
        with pytest.raises(AccessDenied) as denied:
            query_rows(spark, query, role=role, roles=roles)
        assert str(denied.value) == _denied(role, f"{schema}.roles_probe")


@pytest.mark.parametrize("read_from_the_log", ["version", "size_in_bytes"])
def test_a_tables_version_and_size_are_denied_where_its_rows_are(
    spark: SparkSession, storage_root: Path, roles: Roles, read_from_the_log: str
) -> None:
    lakehouse = Lakehouse(spark, StorageRoot(storage_root), role="ml", roles=roles)

    with pytest.raises(AccessDenied) as denied:
        getattr(lakehouse, read_from_the_log)("silver.roles_probe")

    assert str(denied.value) == _denied("ml", "silver.roles_probe")


def test_without_a_role_every_layer_is_read(spark: SparkSession, storage_root: Path) -> None:
    lakehouse = Lakehouse(spark, StorageRoot(storage_root))

    rows = [lakehouse.read(f"{layer}.roles_probe").first() for layer in ("bronze", "silver")]

    assert rows == [Row(layer="bronze"), Row(layer="silver")]


def test_open_takes_the_role_from_the_environment(
    spark: SparkSession, storage_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ROLE_ENV, "ml")
    lakehouse = Lakehouse.open(spark, StorageRoot(storage_root))

    with pytest.raises(AccessDenied) as denied:
        lakehouse.read("silver.roles_probe")

    assert (lakehouse.role, str(denied.value)) == ("ml", _denied("ml", "silver.roles_probe"))


def test_open_without_the_environment_variable_has_no_role(
    spark: SparkSession, storage_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ROLE_ENV, raising=False)

    assert Lakehouse.open(spark, StorageRoot(storage_root)).role is None


def test_unknown_role_fails_when_the_lakehouse_is_opened(
    spark: SparkSession, storage_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ROLE_ENV, "analyst")

    with pytest.raises(ConfigError) as unknown:
        Lakehouse.open(spark, StorageRoot(storage_root))

    assert str(unknown.value) == (
        "unknown role 'analyst'; did you mean 'data_analyst'? "
        "(known roles: data_engineer, data_analyst, ml)"
    )


def test_a_role_without_the_declared_roles_is_a_config_error(
    spark: SparkSession, storage_root: Path
) -> None:
    with pytest.raises(ConfigError) as missing:
        Lakehouse(spark, StorageRoot(storage_root), role="ml")

    assert str(missing.value) == (
        "Lakehouse role 'ml' needs the declared roles: pass "
        "roles=governance.declared_roles(), or use Lakehouse.open"
    )


def test_cli_refuses_a_denied_read_with_the_access_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "medallion", "sql", "--role", "data_analyst",
         "SELECT * FROM bronze.snowflake_orders", "--storage-root", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False, cwd=repo_root(),
        env={**os.environ, "COLUMNS": "200"},
    )

    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        "error: role 'data_analyst' may not read bronze.snowflake_orders: it may read schemas "
        "silver, gold (grants in bundles/roles.yml)\n",
    )
