"""The PostgreSQL stand-in: idempotent ``up``, clean ``down``, status and secrets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import postgres
from medallion.platform.devstack.service import ServiceInfo, service_dir
from tests.lakehouse.sources.redshift.conftest import postgres_processes


def test_up_twice_returns_the_same_service(pg_root: Path, pg_service: ServiceInfo) -> None:
    assert postgres.up(StorageRoot(pg_root)) == pg_service
    assert postgres.status(StorageRoot(pg_root)) == pg_service


def test_url_and_details_name_the_database_without_password(
    pg_root: Path, pg_service: ServiceInfo
) -> None:
    port = pg_service.details["port"]
    assert pg_service.url == f"postgresql://medallion@127.0.0.1:{port}/redshift_analytics"
    assert {k: pg_service.details[k] for k in ("host", "database", "user")} == {
        "host": "127.0.0.1",
        "database": "redshift_analytics",
        "user": "medallion",
    }
    secret = postgres.password(StorageRoot(pg_root))
    assert secret not in pg_service.to_json()
    stored = service_dir(StorageRoot(pg_root), "postgres") / "password"
    assert stored.stat().st_mode & 0o777 == 0o600


def test_connect_answers_as_the_application_role(pg_root: Path, pg_service: ServiceInfo) -> None:
    with postgres.connect(StorageRoot(pg_root)) as conn:
        row = conn.execute("SELECT current_user, current_database(), 1").fetchone()
    assert row == ("medallion", "redshift_analytics", 1)


def test_down_stops_every_process_of_the_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("redshift-down")
    info = postgres.up(StorageRoot(root))
    data_dir = info.details["data_dir"]
    assert postgres_processes(data_dir) == [info.pid]

    assert postgres.down(StorageRoot(root)) is True

    assert postgres_processes(data_dir) == []
    assert postgres.status(StorageRoot(root)) is None
    assert postgres.down(StorageRoot(root)) is False
    postgres.destroy(StorageRoot(root))
    assert not Path(data_dir).exists()


def test_clusters_of_storage_roots_that_are_gone_are_removed(tmp_path: Path) -> None:
    fallback = tmp_path / "medallion-pg"
    alive_root = tmp_path / "still-here"
    alive_root.mkdir()
    clusters = {name: fallback / name for name in ("gone", "alive", "unowned")}
    for cluster in clusters.values():
        (cluster / "data").mkdir(parents=True)
    (clusters["gone"] / postgres.OWNER_FILE).write_text(str(tmp_path / "deleted-root"))
    (clusters["alive"] / postgres.OWNER_FILE).write_text(str(alive_root))

    removed = postgres.remove_orphan_clusters(fallback)

    assert removed == [clusters["gone"]]
    assert sorted(path.name for path in fallback.iterdir()) == ["alive", "unowned"]


def test_a_cluster_another_process_removed_meanwhile_is_skipped(tmp_path: Path) -> None:
    """Two stacks starting at once both sweep the orphans: one lists an owner file the other
    has just removed with its cluster."""
    vanished = tmp_path / "medallion-pg" / "vanished" / postgres.OWNER_FILE

    class ListedThenRemoved:
        def glob(self, pattern: str) -> list[Path]:
            return [vanished] if pattern == f"*/{postgres.OWNER_FILE}" else []

    assert postgres.remove_orphan_clusters(ListedThenRemoved()) == []  # type: ignore[arg-type]


def test_a_fallback_cluster_records_its_storage_root(
    pg_root: Path, pg_service: ServiceInfo
) -> None:
    data_dir = Path(pg_service.details["data_dir"])
    if data_dir.parent.parent != postgres.FALLBACK_ROOT:
        pytest.skip("this storage root's cluster lives in place, not in the fallback directory")
    owner = data_dir.parent / postgres.OWNER_FILE
    assert owner.read_text(encoding="utf-8") == str(pg_root.resolve())


def test_a_new_storage_root_at_an_old_ones_path_gets_a_fresh_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """pytest reuses its numbered temp paths: a world made at a path an earlier world used must
    not read the earlier world's tables from a cluster left in the fallback directory."""
    root = tmp_path_factory.mktemp("redshift-reused")
    postgres.up(StorageRoot(root))
    with postgres.connect(StorageRoot(root)) as conn:
        conn.execute("CREATE TABLE left_by_the_earlier_root (id int)")
        conn.commit()
    postgres.down(StorageRoot(root))
    shutil.rmtree(root)  # the earlier world is deleted; its fallback cluster (if any) stays
    root.mkdir()
    try:
        postgres.up(StorageRoot(root))
        with postgres.connect(StorageRoot(root)) as conn:
            found = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE tablename = 'left_by_the_earlier_root'"
            ).fetchone()
        assert found == (0,)
        assert postgres.up(StorageRoot(root)).pid == postgres.status(StorageRoot(root)).pid  # type: ignore[union-attr]
    finally:
        postgres.destroy(StorageRoot(root))
