"""Roles from the repository's bundle: the read matrix, unknown roles, and the rendered grants."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medallion.lakehouse.errors import AccessDenied, ConfigError
from medallion.lakehouse.governance import Roles, SchemaGrant
from medallion.lakehouse.settings import repo_root
from medallion.platform.bundle import load_bundle
from medallion.platform.cli import app
from medallion.platform.roles import roles_from_bundle
from tests.lakehouse.governance.conftest import MATRIX, READABLE


def _denied(role: str, table: str) -> str:
    return (
        f"role {role!r} may not read {table}: it may read schemas "
        f"{', '.join(READABLE[role])} (grants in bundles/roles.yml)"
    )


def test_bundle_declares_the_three_roles_and_what_each_may_read(roles: Roles) -> None:
    assert {role: roles.readable(role) for role in roles.names} == READABLE


@pytest.mark.parametrize(("role", "schema"), MATRIX)
def test_check_read_follows_the_matrix(roles: Roles, role: str, schema: str) -> None:
    table = f"{schema}.fact_orders"
    if schema in READABLE[role]:
        roles.check_read(role, table)  # raises AccessDenied if denied
    else:
        with pytest.raises(AccessDenied) as denied:
            roles.check_read(role, table)
        assert str(denied.value) == _denied(role, table)


def test_unqualified_table_is_in_schema_default_and_denied(roles: Roles) -> None:
    with pytest.raises(AccessDenied) as denied:
        roles.check_read("data_engineer", "fact_orders")

    assert str(denied.value) == (
        "role 'data_engineer' may not read fact_orders (schema default): it may read schemas "
        "bronze, silver, gold, ops (grants in bundles/roles.yml)"
    )


def test_unknown_role_is_a_config_error_naming_the_known_roles(roles: Roles) -> None:
    with pytest.raises(ConfigError) as unknown:
        roles.check_read("analyst", "gold.orders_daily")

    assert str(unknown.value) == (
        "unknown role 'analyst'; did you mean 'data_analyst'? "
        "(known roles: data_engineer, data_analyst, ml)"
    )


def test_a_schema_is_readable_only_with_both_use_schema_and_select() -> None:
    roles = Roles((
        SchemaGrant("c", "silver", "auditor", ("USE_SCHEMA",)),
        SchemaGrant("c", "gold", "auditor", ("USE_SCHEMA", "SELECT")),
    ))

    assert roles.readable("auditor") == ("gold",)


DEV_GRANTS = [
    "GRANT USE CATALOG ON CATALOG medallion_dev TO `data_engineer`",
    "GRANT USE CATALOG ON CATALOG medallion_dev TO `data_analyst`",
    "GRANT USE CATALOG ON CATALOG medallion_dev TO `ml`",
    "GRANT USE SCHEMA, SELECT ON SCHEMA medallion_dev.bronze TO `data_engineer`",
    "GRANT USE SCHEMA, SELECT ON SCHEMA medallion_dev.silver TO `data_engineer`",
    "GRANT USE SCHEMA, SELECT ON SCHEMA medallion_dev.silver TO `data_analyst`",
    "GRANT USE SCHEMA, SELECT ON SCHEMA medallion_dev.gold TO `data_engineer`",
    "GRANT USE SCHEMA, SELECT ON SCHEMA medallion_dev.gold TO `data_analyst`",
    "GRANT USE SCHEMA, SELECT ON SCHEMA medallion_dev.gold TO `ml`",
    "GRANT USE SCHEMA, SELECT ON SCHEMA medallion_dev.ops TO `data_engineer`",
]


def test_grants_for_the_dev_target() -> None:
    roles = roles_from_bundle(load_bundle(repo_root(), "dev"))

    assert roles.grant_statements() == DEV_GRANTS


def test_prod_grants_are_on_the_prod_catalog() -> None:
    roles = roles_from_bundle(load_bundle(repo_root(), "prod"))

    assert roles.grant_statements() == [
        statement.replace("medallion_dev", "medallion") for statement in DEV_GRANTS
    ]


def test_bundle_grants_command_prints_the_statements() -> None:
    result = CliRunner().invoke(app, ["bundle", "grants", "-t", "dev",
                                      "--bundle-root", str(repo_root())])

    assert result.exit_code == 0, result.output
    assert result.stdout == "".join(f"{statement};\n" for statement in DEV_GRANTS)


def test_grant_statements_quote_names_and_spell_privileges_as_sql() -> None:
    roles = Roles((
        SchemaGrant("main", "gold", "ana@example.com", ("ALL_PRIVILEGES",)),
        SchemaGrant("sandbox-eu", "gold", "ana@example.com", ("USE_SCHEMA", "READ_VOLUME")),
        SchemaGrant("main", "silver", "ana@example.com", ("USE_SCHEMA",)),
    ))

    assert roles.grant_statements() == [
        "GRANT USE CATALOG ON CATALOG main TO `ana@example.com`",
        "GRANT USE CATALOG ON CATALOG `sandbox-eu` TO `ana@example.com`",
        "GRANT ALL PRIVILEGES ON SCHEMA main.gold TO `ana@example.com`",
        "GRANT USE SCHEMA, READ VOLUME ON SCHEMA `sandbox-eu`.gold TO `ana@example.com`",
        "GRANT USE SCHEMA ON SCHEMA main.silver TO `ana@example.com`",
    ]


def test_a_grant_without_a_principal_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "databricks.yml").write_text(
        "bundle:\n  name: b\nresources:\n  schemas:\n    gold:\n      catalog_name: main\n"
        "      name: gold\n      grants:\n        - privileges: [SELECT]\n"
    )

    with pytest.raises(ConfigError) as missing:
        roles_from_bundle(load_bundle(tmp_path))

    assert str(missing.value) == (
        "databricks.yml:9: resources.schemas.gold.grants[0].principal: expected a non-empty "
        "string, found None"
    )
