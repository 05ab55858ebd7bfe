"""The environment is resolved once, at the edge: target, endpoints, catalog and secret provider."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medallion.lakehouse.credentials import PROVIDER_ENV
from medallion.lakehouse.environment import (
    DATABRICKS,
    LOCAL,
    Endpoints,
    Environment,
    StandIns,
    resolve_target,
)
from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack.service import ServiceInfo, write_info
from medallion.platform.devstack.stack import local_stand_ins

POSTGRES = StandIns(
    endpoints={"redshift_url": "postgresql://127.0.0.1:55432/redshift_analytics"},
    credentials={"redshift_url": {"redshift-user": "medallion", "redshift-password": "pg-pw"}},
)


@pytest.fixture
def on_databricks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Databricks runtime, as its clusters announce themselves."""
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")


@pytest.fixture(autouse=True)
def no_provider_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither a runtime nor ``MEDALLION_SECRETS`` from the machine running the tests."""
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    monkeypatch.delenv(PROVIDER_ENV, raising=False)


def test_off_databricks_the_target_is_local(tmp_path: Path) -> None:
    environment = Environment.resolve(StorageRoot(tmp_path))

    assert (resolve_target(), environment.target) == (LOCAL, LOCAL)
    assert (environment.storage_root, environment.catalog) == (StorageRoot(tmp_path), None)


@pytest.mark.usefixtures("on_databricks")
def test_a_databricks_runtime_is_the_databricks_target(tmp_path: Path) -> None:
    environment = Environment.resolve(StorageRoot(tmp_path), catalog="medallion_dev")

    assert (resolve_target(), environment.target) == (DATABRICKS, DATABRICKS)
    assert environment.table_catalog() == "medallion_dev"


def test_the_local_target_fills_an_empty_endpoint_from_the_running_stand_in(
    tmp_path: Path,
) -> None:
    environment = Environment.resolve(
        StorageRoot(tmp_path),
        endpoints=Endpoints(fx_api_url="https://rates.example"),
        stand_ins=POSTGRES,
    )

    endpoints = environment.endpoints
    assert endpoints.require("redshift_url") == "postgresql://127.0.0.1:55432/redshift_analytics"
    assert endpoints.require("fx_api_url") == "https://rates.example"
    assert (endpoints.lineage_url("redshift_url"), endpoints.lineage_url("fx_api_url")) == (
        "", "https://rates.example")  # a stand-in is named the same whatever its port


def test_the_stand_ins_credentials_come_with_its_endpoint_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDALLION_REDSHIFT_USER", "loader")
    monkeypatch.setenv("MEDALLION_SNOWFLAKE_USER", "publisher")
    stand_ins = StandIns(
        endpoints={**POSTGRES.endpoints, "snowflake_url": "http://127.0.0.1:1?account=fakesnow"},
        credentials={**POSTGRES.credentials, "snowflake_url": {"snowflake-user": "fake"}},
    )
    given = Endpoints(snowflake_url="https://acme.snowflakecomputing.com")

    root = StorageRoot(tmp_path)
    secrets = Environment.resolve(root, endpoints=given, stand_ins=stand_ins).secrets

    assert secrets.get("redshift-user") == "medallion"  # the stand-in's own role
    assert secrets.get("snowflake-user") == "publisher"  # the configured account's user


def test_a_stand_in_found_running_by_its_state_file_gives_its_url(tmp_path: Path) -> None:
    write_info(StorageRoot(tmp_path), ServiceInfo("fx_api", "http://127.0.0.1:48001", os.getpid()))

    root = StorageRoot(tmp_path)
    environment = Environment.resolve(root, stand_ins=local_stand_ins(root))

    assert environment.endpoints.require("fx_api_url") == "http://127.0.0.1:48001"


def test_locally_an_endpoint_without_a_stand_in_says_how_to_start_one(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)
    environment = Environment.resolve(root, stand_ins=local_stand_ins(root))

    with pytest.raises(ConfigError) as raised:
        environment.endpoints.require("snowflake_url")

    assert str(raised.value) == (
        f"no snowflake_url configured and no local Snowflake stand-in is running for "
        f"{tmp_path.resolve()}: start it with `medallion devstack up` or pass the job "
        "parameter snowflake_url"
    )


@pytest.mark.usefixtures("on_databricks")
def test_on_databricks_an_empty_endpoint_is_refused_by_its_parameter(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)
    environment = Environment.resolve(root, catalog="medallion", stand_ins=POSTGRES)

    with pytest.raises(ConfigError, match=r"^no redshift_url configured: expected the job "
                                          r"parameter redshift_url$"):
        environment.endpoints.require("redshift_url")  # stand-ins are local only


@pytest.mark.usefixtures("on_databricks")
def test_on_databricks_the_tables_need_a_catalog(tmp_path: Path) -> None:
    environment = Environment.resolve(StorageRoot(tmp_path))

    with pytest.raises(ConfigError, match="expected the job parameter 'catalog'"):
        environment.table_catalog()


def test_a_malformed_catalog_is_refused_at_the_edge(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="catalog 'Main-Catalog': expected a Unity Catalog"):
        Environment.resolve(StorageRoot(tmp_path), catalog="Main-Catalog")


def test_an_unknown_endpoint_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="endpoint 'warehouse_url': expected one of"):
        Endpoints().require("warehouse_url")


def test_the_local_provider_reads_the_environment_and_generates_its_salt(
    tmp_path: Path,
) -> None:
    secrets = Environment.resolve(StorageRoot(tmp_path)).secrets

    assert (secrets.workspace, secrets.generated_under) == (False, StorageRoot(tmp_path))
    assert secrets.get("pii-hash-salt") == (tmp_path / "_system/secrets/pii-hash-salt").read_text()


def test_the_workspace_provider_is_chosen_locally_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROVIDER_ENV, "workspace")

    secrets = Environment.resolve(StorageRoot(tmp_path)).secrets

    assert (secrets.workspace, secrets.generated_under) == (True, StorageRoot(tmp_path))


@pytest.mark.usefixtures("on_databricks")
def test_on_databricks_secrets_come_from_the_workspace_and_none_is_generated(
    tmp_path: Path,
) -> None:
    secrets = Environment.resolve(StorageRoot(tmp_path), stand_ins=POSTGRES).secrets

    assert (secrets.workspace, secrets.generated_under, dict(secrets.pinned)) == (True, None, {})
