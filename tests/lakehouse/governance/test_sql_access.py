"""Which tables a query reads (sqlglot, Spark dialect), and the access check built on it."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from medallion.lakehouse.errors import AccessDenied, ConfigError
from medallion.lakehouse.governance import Roles
from medallion.lakehouse.settings import repo_root
from medallion.platform.roles import declared_roles
from medallion.platform.sql import TableRead, check_query, tables_read


@pytest.fixture(scope="module")
def roles() -> Roles:
    return declared_roles(repo_root())


def _reads(query: str) -> list[TableRead]:
    statement = sqlglot.parse_one(query, dialect="spark")
    assert isinstance(statement, exp.Query)
    return tables_read(statement)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            "SELECT o.id, c.name FROM silver.fact_orders o JOIN silver.dim_customer c "
            "ON o.customer_id = c.customer_id LEFT JOIN gold.orders_daily d ON d.id = o.id",
            [TableRead("silver.fact_orders", "silver.fact_orders"),
             TableRead("silver.dim_customer", "silver.dim_customer"),
             TableRead("gold.orders_daily", "gold.orders_daily")],
            id="joins",
        ),
        pytest.param(
            "WITH recent AS (SELECT * FROM silver.fact_orders), top AS (SELECT * FROM recent) "
            "SELECT * FROM top JOIN recent r ON top.id = r.id",
            [TableRead("silver.fact_orders", "silver.fact_orders")],
            id="cte-names-are-not-tables",
        ),
        pytest.param(
            "WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS id) SELECT * FROM a",
            [TableRead("b", "default.b")],
            id="cte-used-before-it-is-defined-is-a-table",
        ),
        pytest.param(
            "WITH fact_orders AS (SELECT 1 AS id) SELECT * FROM bronze.fact_orders",
            [TableRead("bronze.fact_orders", "bronze.fact_orders")],
            id="qualified-name-is-a-table-even-when-a-cte-has-its-name",
        ),
        pytest.param(
            "SELECT * FROM gold.fact_customer_360 WHERE customer_id IN "
            "(SELECT customer_id FROM bronze.crm_accounts) "
            "AND EXISTS (SELECT 1 FROM (SELECT * FROM silver.dim_customer) d)",
            [TableRead("gold.fact_customer_360", "gold.fact_customer_360"),
             TableRead("bronze.crm_accounts", "bronze.crm_accounts"),
             TableRead("silver.dim_customer", "silver.dim_customer")],
            id="subqueries",
        ),
        pytest.param(
            "SELECT id FROM gold.orders_daily UNION ALL SELECT id FROM silver.fact_orders "
            "UNION SELECT id FROM Bronze.Snowflake_Orders",
            [TableRead("gold.orders_daily", "gold.orders_daily"),
             TableRead("silver.fact_orders", "silver.fact_orders"),
             TableRead("Bronze.Snowflake_Orders", "bronze.snowflake_orders")],
            id="union",
        ),
        pytest.param(
            "SELECT * FROM delta.`/lake/bronze/snowflake_orders`",
            [TableRead("delta.`/lake/bronze/snowflake_orders`", None)],
            id="delta-path",
        ),
        pytest.param(
            "SELECT * FROM parquet.`s3://bucket/gold/x` JOIN gold.orders_daily USING (id)",
            [TableRead("parquet.`s3://bucket/gold/x`", None),
             TableRead("gold.orders_daily", "gold.orders_daily")],
            id="parquet-path",
        ),
        pytest.param(
            "SELECT * FROM read_files('/lake/raw')",
            [TableRead("READ_FILES('/lake/raw')", None)],
            id="table-function",
        ),
        pytest.param(
            "SELECT * FROM orders_daily",
            [TableRead("orders_daily", "default.orders_daily")],
            id="unqualified",
        ),
        pytest.param(
            "SELECT * FROM spark_catalog.gold.orders_daily VERSION AS OF 3",
            [TableRead("spark_catalog.gold.orders_daily", "gold.orders_daily")],
            id="catalog-qualified-time-travel",
        ),
        pytest.param("SELECT 1 AS one", [], id="no-table"),
    ],
)
def test_tables_read(query: str, expected: list[TableRead]) -> None:
    assert _reads(query) == expected


def test_analyst_may_join_silver_and_gold(roles: Roles) -> None:
    query = (
        "WITH o AS (SELECT * FROM silver.fact_orders) "
        "SELECT * FROM o JOIN gold.fact_customer_360 g ON o.customer_id = g.customer_id"
    )

    check_query(roles, "data_analyst", query)  # raises AccessDenied if denied


def test_first_denied_table_is_named(roles: Roles) -> None:
    query = (
        "SELECT * FROM gold.orders_daily WHERE id IN (SELECT id FROM silver.fact_orders) "
        "UNION SELECT * FROM bronze.snowflake_orders"
    )

    with pytest.raises(AccessDenied) as denied:
        check_query(roles, "ml", query)

    assert str(denied.value) == (
        "role 'ml' may not read silver.fact_orders: it may read schemas gold "
        "(grants in bundles/roles.yml)"
    )


def test_table_hidden_in_a_cte_is_checked(roles: Roles) -> None:
    query = "WITH g AS (SELECT * FROM bronze.fx_rates) SELECT * FROM g"

    with pytest.raises(AccessDenied) as denied:
        check_query(roles, "data_analyst", query)

    assert str(denied.value) == (
        "role 'data_analyst' may not read bronze.fx_rates: it may read schemas silver, gold "
        "(grants in bundles/roles.yml)"
    )


def test_path_read_is_denied_even_to_the_data_engineer(roles: Roles) -> None:
    with pytest.raises(AccessDenied) as denied:
        check_query(roles, "data_engineer", "SELECT * FROM delta.`/lake/gold/orders_daily`")

    assert str(denied.value) == (
        "role 'data_engineer' may not read delta.`/lake/gold/orders_daily`: a read by path or "
        "table function bypasses the catalog's grants, so no role may; read a table by name "
        "(it may read schemas bronze, silver, gold, ops)"
    )


def test_unqualified_name_is_denied_as_a_table_of_schema_default(roles: Roles) -> None:
    with pytest.raises(AccessDenied) as denied:
        check_query(roles, "data_engineer", "SELECT * FROM orders_daily")

    assert str(denied.value) == (
        "role 'data_engineer' may not read default.orders_daily: it may read schemas "
        "bronze, silver, gold, ops (grants in bundles/roles.yml)"
    )


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("DROP TABLE gold.orders_daily", "DROP"),
        ("INSERT INTO gold.orders_daily SELECT * FROM gold.orders_daily", "INSERT"),
        ("SHOW TABLES IN gold", "SHOW"),
    ],
)
def test_only_queries_run_under_a_role(roles: Roles, query: str, kind: str) -> None:
    with pytest.raises(AccessDenied) as denied:
        check_query(roles, "ml", query)

    assert str(denied.value) == (
        f"role 'ml' may only run queries (SELECT, WITH, UNION, ...): its grants are "
        f"USE SCHEMA and SELECT, and {kind} is not a query"
    )


def test_every_statement_is_checked(roles: Roles) -> None:
    with pytest.raises(AccessDenied) as denied:
        check_query(roles, "ml", "SELECT * FROM gold.orders_daily; SELECT * FROM silver.fx_rates")

    assert str(denied.value) == (
        "role 'ml' may not read silver.fx_rates: it may read schemas gold "
        "(grants in bundles/roles.yml)"
    )


def test_sql_that_does_not_parse_is_denied(roles: Roles) -> None:
    with pytest.raises(AccessDenied) as denied:
        check_query(roles, "ml", "SELECT * FROM gold.orders_daily WHERE (")

    assert str(denied.value).startswith("role 'ml': the query does not parse (")
    assert str(denied.value).endswith("), so the tables it reads cannot be checked")


def test_unknown_role_is_a_config_error(roles: Roles) -> None:
    with pytest.raises(ConfigError, match=r"^unknown role 'admin' \(known roles: "):
        check_query(roles, "admin", "SELECT 1")
