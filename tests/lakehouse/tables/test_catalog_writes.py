"""Lakehouse in catalog mode on inline rows: managed tables, and every write counted in its pass.

The catalog is Spark's session catalog, named in full (``spark_catalog``), the local stand-in of
a Unity Catalog catalog; each test writes to a schema of its own.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.environment import DATABRICKS, Environment
from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.spark import counted_while, local_frame
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import Lakehouse

SCHEMAS = itertools.count()
DAY_1, DAY_2 = "DATE'2026-11-02'", "DATE'2026-11-03'"


@pytest.fixture
def schema(spark: SparkSession) -> str:
    name = f"catalog_mode_{next(SCHEMAS)}"
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS spark_catalog.{name}")
    return name


@pytest.fixture
def house(spark: SparkSession, tmp_path: Path) -> Lakehouse:
    return Lakehouse.open(spark, StorageRoot(tmp_path), catalog="spark_catalog")


def rows(spark: SparkSession, day: str, ids: list[str]) -> DataFrame:
    return local_frame(spark, [(i,) for i in ids], "id string").select(
        "id", sf.expr(day).alias("_proc_date"))


def written(house: Lakehouse, frame: DataFrame, table: str, **options: object) -> int:
    """Write ``frame`` and return the row count observed in the write's own pass."""
    counts = counted_while(frame, [sf.count(sf.lit(1)).alias("rows")],
                           lambda f: house.write(f, table, **options))  # type: ignore[arg-type]
    return int(counts["rows"])


def test_each_kind_of_write_is_counted_in_its_own_pass_and_lands_in_a_managed_table(
    spark: SparkSession, house: Lakehouse, schema: str, tmp_path: Path
) -> None:
    table = f"{schema}.events"
    day_1, day_2 = rows(spark, DAY_1, ["a", "b"]), rows(spark, DAY_2, ["c"])
    replace_day_1 = f"_proc_date = {DAY_1}"

    assert written(house, day_1, table, partition_by=["_proc_date"],
                   replace_where=replace_day_1) == 2  # creates the table
    assert written(house, day_2, table, mode="append") == 1
    again = rows(spark, DAY_1, ["a"])
    assert written(house, again, table, replace_where=replace_day_1) == 1

    assertDataFrameEqual(house.read(table), again.unionByName(day_2))
    details = {row["col_name"]: row["data_type"] for row in
               spark.sql(f"DESCRIBE TABLE EXTENDED spark_catalog.{table}").collect()}
    assert (details["Name"], details["Type"]) == (f"spark_catalog.{table}", "MANAGED")
    partitions = spark.sql(f"DESCRIBE DETAIL spark_catalog.{table}").first()
    assert partitions is not None
    assert partitions["partitionColumns"] == ["_proc_date"]
    assert list(tmp_path.iterdir()) == []  # nothing by path under the storage root


def test_a_full_overwrite_may_change_the_schema(
    spark: SparkSession, house: Lakehouse, schema: str
) -> None:
    table = f"{schema}.daily"
    house.write(local_frame(spark, [("a", 1)], "id string, n int"), table)
    wider = local_frame(spark, [("b", 2, "x")], "id string, n int, note string")

    assert written(house, wider, table) == 1

    assertDataFrameEqual(house.read(table), wider)


def test_a_catalog_is_a_lower_snake_case_name(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="catalog 'Main-Catalog': expected a Unity Catalog"):
        Lakehouse.open(spark, StorageRoot(tmp_path), catalog="Main-Catalog")


def test_on_databricks_a_lakehouse_without_a_catalog_is_refused(spark: SparkSession) -> None:
    root = "/Volumes/medallion/lakehouse/files"

    with pytest.raises(ConfigError, match="expected the job parameter 'catalog'"):
        Lakehouse.open(spark, StorageRoot(root), catalog="", target=DATABRICKS)
    opened = Lakehouse.open(spark, StorageRoot(root), catalog="medallion", target=DATABRICKS)
    assert opened.name("gold.orders_daily") == "medallion.gold.orders_daily"


def test_a_resolved_databricks_environment_opens_its_catalog(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    environment = Environment.resolve(
        StorageRoot("/Volumes/medallion/lakehouse/files"), catalog="medallion"
    )

    opened = Lakehouse.in_environment(spark, environment)

    assert (opened.catalog, opened.role) == ("medallion", None)


def test_a_schema_lists_its_tables_in_either_layout(
    spark: SparkSession, house: Lakehouse, schema: str, tmp_path: Path
) -> None:
    for name in ("b", "a"):
        house.write(local_frame(spark, [(1,)], "n int"), f"{schema}.{name}")
    by_path = Lakehouse.open(spark, StorageRoot(tmp_path / "by-path"))
    by_path.write(local_frame(spark, [(1,)], "n int"), "gold.t")

    assert house.tables(schema) == [f"{schema}.a", f"{schema}.b"]
    assert by_path.tables("gold") == ["gold.t"]


def test_a_merge_upserts_into_the_catalog_table(
    spark: SparkSession, house: Lakehouse, schema: str
) -> None:
    table = f"{schema}.rates"
    house.merge(local_frame(spark, [("EUR", 1.0), ("GBP", 2.0)], "k string, v double"),
                table, keys=["k"])  # the first merge creates the table
    house.merge(local_frame(spark, [("GBP", 2.5), ("JPY", 3.0)], "k string, v double"),
                table, keys=["k"])

    assertDataFrameEqual(house.read(table), local_frame(
        spark,
        [("EUR", 1.0), ("GBP", 2.5), ("JPY", 3.0)], "k string, v double"))
    details = {row["col_name"]: row["data_type"] for row in
               spark.sql(f"DESCRIBE TABLE EXTENDED spark_catalog.{table}").collect()}
    assert details["Type"] == "MANAGED"
