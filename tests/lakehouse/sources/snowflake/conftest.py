"""A real fakesnow server for the Snowflake tests, started once per module."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from medallion.lakehouse.sources.snowflake import SnowflakeConnection, create_orders_table
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import snowflake as snowflake_stack
from medallion.platform.devstack.service import ServiceInfo

ORDERS_START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def snowflake_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A storage root with the Snowflake stand-in up; stopped at teardown."""
    root = tmp_path_factory.mktemp("snowflake-root")
    snowflake_stack.up(StorageRoot(root))
    yield root
    snowflake_stack.down(StorageRoot(root))


@pytest.fixture(scope="module")
def snowflake_info(snowflake_root: Path) -> ServiceInfo:
    """The running stand-in's state."""
    info = snowflake_stack.status(StorageRoot(snowflake_root))
    if info is None:
        raise RuntimeError(f"the Snowflake stand-in is not running for {snowflake_root}")
    return info


@pytest.fixture(scope="module")
def snowflake_conn(snowflake_root: Path) -> Iterator[SnowflakeConnection]:
    """One connector session to the stand-in, with ORDERS created."""
    conn = snowflake_stack.connect(StorageRoot(snowflake_root))
    create_orders_table(conn)
    yield conn
    conn.close()


def make_orders(count: int) -> list[dict[str, Any]]:
    """``count`` orders as the generator delivers them, dirt included.

    Order 7 has a wrong-typed amount ("12,50"); order 11 has no updated_at.
    """
    orders = []
    for number in range(1, count + 1):
        order_ts = ORDERS_START + timedelta(minutes=17 * number)
        orders.append(
            {
                "order_id": f"ord_{number:08d}",
                "customer_id": f"cust_{number % 37:07d}",
                "order_ts": order_ts,
                "status": ("placed", "paid", "shipped", "cancelled")[number % 4],
                "currency": ("EUR", "USD", "GBP")[number % 3],
                "order_amount": "12,50"
                if number == 7
                else Decimal(f"{number * 3}.{number % 100:02d}"),
                "updated_at": None if number == 11 else order_ts + timedelta(hours=number % 5),
            }
        )
    return orders


def as_extracted(order: dict[str, Any]) -> dict[str, Any]:
    """What ``extract_orders`` should hand back for ``order``."""
    amount = order["order_amount"]
    return {
        "order_id": order["order_id"],
        "customer_id": order["customer_id"],
        "order_ts": order["order_ts"].isoformat(),
        "status": order["status"],
        "currency": order["currency"],
        "order_amount": amount if isinstance(amount, str) else format(amount, "f"),
        "updated_at": None if order["updated_at"] is None else order["updated_at"].isoformat(),
    }
