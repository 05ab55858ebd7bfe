"""The Snowflake stand-in and the ORDERS full-load source, against a real fakesnow server."""

from __future__ import annotations

import json
import socket
from datetime import date, timedelta
from pathlib import Path

import pytest

from medallion.lakehouse.clients.snowflake import (
    PASSWORD_ENV,
    SnowflakeConnection,
    connect_to,
    settings_from_env,
)
from medallion.lakehouse.errors import SourceUnavailable
from medallion.lakehouse.raw.landing import read_manifest
from medallion.lakehouse.sources.snowflake import (
    create_orders_table,
    extract_orders,
    extract_orders_to_raw,
    replace_orders,
)
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import snowflake as snowflake_stack
from medallion.platform.devstack.service import ServiceInfo, pick_port, pid_alive, port_is_free
from tests.lakehouse.sources.snowflake.conftest import as_extracted, make_orders

RUN_DATE = date(2026, 11, 26)


def read_landed(load_dir: Path) -> list[dict[str, object]]:
    """Every record of a load, in file order, as the manifest lists them."""
    manifest = read_manifest(load_dir)
    return [
        json.loads(line)
        for path in manifest.data_paths
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_up_is_idempotent(snowflake_root: Path, snowflake_info: ServiceInfo) -> None:
    """A second ``up`` returns the running server instead of starting another."""
    again = snowflake_stack.up(StorageRoot(snowflake_root))
    assert again == snowflake_info
    assert again.url == f"snowflake://127.0.0.1:{again.details['port']}"
    assert again.details["database"] == "SNOWFLAKE_DW"
    assert again.details["schema"] == "SALES"


def test_extract_returns_exactly_the_loaded_orders(snowflake_conn: SnowflakeConnection) -> None:
    """500 loaded orders come back whole, dirt and null timestamps included, by order_id."""
    orders = make_orders(500)
    assert replace_orders(snowflake_conn, orders, batch_size=128) == 500
    assert extract_orders(snowflake_conn, batch_size=64) == [as_extracted(o) for o in orders]


def test_reextract_replaces_the_load_exactly(
    snowflake_root: Path, snowflake_conn: SnowflakeConnection
) -> None:
    """Changing 3 rows and deleting 2, then re-landing the day, leaves exactly the new table."""
    orders = make_orders(500)
    replace_orders(snowflake_conn, orders)
    first = extract_orders_to_raw(StorageRoot(snowflake_root), snowflake_conn, RUN_DATE)
    assert first.row_count == 500
    changed = {"ord_00000010", "ord_00000200", "ord_00000499"}
    deleted = {"ord_00000003", "ord_00000300"}
    updated = [
        order | {"status": "refunded", "updated_at": order["order_ts"] + timedelta(days=9)}
        if order["order_id"] in changed
        else order
        for order in orders
        if order["order_id"] not in deleted
    ]
    replace_orders(snowflake_conn, updated)

    second = extract_orders_to_raw(StorageRoot(snowflake_root), snowflake_conn, RUN_DATE)

    expected = [as_extracted(order) for order in updated]
    landed = read_landed(second.load_dir)
    assert landed == expected
    assert {record["order_id"] for record in landed} == {
        f"ord_{n:08d}" for n in range(1, 501)
    } - deleted
    assert second.row_count == 498
    assert dict(second.source_positions) == {
        "row_count": 498,
        "max_updated_at": max(o["updated_at"] for o in expected if o["updated_at"] is not None),
    }
    on_disk = {path.name for path in second.load_dir.iterdir()}
    assert on_disk == {"_manifest.json", *(landed_file.name for landed_file in second.files)}


def test_identical_rerun_is_a_no_op(
    snowflake_root: Path, snowflake_conn: SnowflakeConnection
) -> None:
    """Landing the same table again for the same day keeps the existing manifest."""
    replace_orders(snowflake_conn, make_orders(50))
    run_date = RUN_DATE + timedelta(days=1)
    first = extract_orders_to_raw(StorageRoot(snowflake_root), snowflake_conn, run_date)
    second = extract_orders_to_raw(StorageRoot(snowflake_root), snowflake_conn, run_date)
    assert second.landed_at == first.landed_at
    assert second.sha256 == first.sha256
    assert read_manifest(first.load_dir).landed_at == first.landed_at


def test_a_past_day_with_a_later_snapshot_is_kept_not_retaken(
    snowflake_root: Path, snowflake_conn: SnowflakeConnection
) -> None:
    """A backfill cannot re-take yesterday's snapshot: the existing load stays as it was."""
    past, later = RUN_DATE + timedelta(days=20), RUN_DATE + timedelta(days=21)
    replace_orders(snowflake_conn, make_orders(30))
    kept = extract_orders_to_raw(StorageRoot(snowflake_root), snowflake_conn, past)
    extract_orders_to_raw(StorageRoot(snowflake_root), snowflake_conn, later)
    replace_orders(snowflake_conn, make_orders(40))

    again = extract_orders_to_raw(StorageRoot(snowflake_root), snowflake_conn, past)

    assert (again.row_count, again.sha256, again.landed_at) == (30, kept.sha256, kept.landed_at)
    assert read_manifest(kept.load_dir).row_count == 30


def test_closed_port_raises_source_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening: SourceUnavailable names the source and host:port, never the password."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-do-not-log")
    settings = settings_from_env(host="127.0.0.1", port=port, protocol="http")

    with pytest.raises(SourceUnavailable) as caught:
        connect_to(settings, attempts=2, initial_wait_seconds=0.01, login_timeout_seconds=2)

    message = str(caught.value)
    assert "'snowflake'" in message
    assert f"127.0.0.1:{port}" in message
    assert "after 2 attempts" in message
    assert "s3cret-do-not-log" not in message


def test_down_stops_the_server_and_data_survives_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``down`` leaves no process or state file; the next ``up`` still has the data."""
    root = tmp_path_factory.mktemp("snowflake-restart")
    info = snowflake_stack.up(StorageRoot(root))
    try:
        conn = snowflake_stack.connect(StorageRoot(root))
        create_orders_table(conn)
        orders = make_orders(20)
        replace_orders(conn, orders)
        conn.close()
        assert snowflake_stack.down(StorageRoot(root)) is True
        assert not pid_alive(info.pid)
        assert port_is_free(int(info.details["port"]))
        assert snowflake_stack.status(StorageRoot(root)) is None
        assert snowflake_stack.down(StorageRoot(root)) is False

        restarted = snowflake_stack.up(StorageRoot(root))
        conn = snowflake_stack.connect(StorageRoot(root))
        assert extract_orders(conn) == [as_extracted(order) for order in orders]
        conn.close()
    finally:
        snowflake_stack.down(StorageRoot(root))
    assert not pid_alive(restarted.pid)


def test_a_start_that_loses_its_port_to_another_process_retries_on_a_free_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pick_port`` saw the port free, then someone else bound it before the server did."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks: list[int] = []
        real_pick = pick_port

        def pick_then_lose(preferred: int) -> int:
            port = taken if not picks else real_pick(preferred)
            picks.append(port)
            return port

        monkeypatch.setattr(snowflake_stack, "pick_port", pick_then_lose)
        try:
            info = snowflake_stack.up(StorageRoot(tmp_path))

            assert picks[0] == taken
            assert info.details["port"] != str(taken)
            assert snowflake_stack.status(StorageRoot(tmp_path)) == info
            with snowflake_stack.connect(StorageRoot(tmp_path)) as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT 41 + 1")
                assert cursor.fetchone() == (42,)
        finally:
            snowflake_stack.down(StorageRoot(tmp_path))
