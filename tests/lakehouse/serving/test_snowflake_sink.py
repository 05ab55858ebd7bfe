"""The Snowflake sink against a real fakesnow server, through snowflake-connector-python.

Each test publishes into its own target of schema ANALYTICS and compares whole tables, the whole
publish log and exact counts.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from medallion.lakehouse.clients.snowflake import (
    PASSWORD_ENV,
    SnowflakeConnection,
    SnowflakeSettings,
    settings_from_env,
)
from medallion.lakehouse.errors import PublishError, WarehouseUnavailable
from medallion.lakehouse.serving import Figures, GoldColumn, GoldSnapshot, PublishResult
from medallion.lakehouse.serving import snowflake as snowflake_sink
from medallion.lakehouse.serving.snowflake import SnowflakeSink
from medallion.lakehouse.serving.snowflake_sql import merge_statement
from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import snowflake as snowflake_stack

GOLD = "gold.fact_customer_360"
T0 = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
COLUMNS = (
    GoldColumn("customer_id", "string"),
    GoldColumn("country", "string"),
    GoldColumn("order_count", "bigint"),
    GoldColumn("last_order_ts", "timestamp"),
    GoldColumn("lifetime_value_usd", "decimal(18,2)"),
    GoldColumn("first_seen", "date"),
    GoldColumn("score", "double"),
    GoldColumn("active", "boolean"),
)
ARROW_TYPES = {
    "string": pa.string(),
    "bigint": pa.int64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "decimal(18,2)": pa.decimal128(18, 2),
    "date": pa.date32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}
Row = tuple[Any, ...]
V1: list[Row] = [
    ("c1", "DE", 3, T0, Decimal("120.50"), date(2026, 1, 5), 0.5, True),
    ("c2", "FR", 1, T0 + timedelta(hours=5), Decimal("9.99"), date(2026, 2, 1), 1.25, False),
    ("c3", None, 0, None, None, None, None, None),
    ("c4", "US", 7, T0 + timedelta(days=2), Decimal("1000.00"), date(2025, 12, 31), 2.0, True),
]


def make_snapshot(
    rows: list[Row], version: int, columns: tuple[GoldColumn, ...] = COLUMNS
) -> GoldSnapshot:
    """A gold snapshot of ``rows`` (in ``columns`` order), two rows per Arrow batch."""
    schema = pa.schema([pa.field(column.name, ARROW_TYPES[column.type]) for column in columns])
    table = pa.Table.from_pylist(
        [dict(zip(schema.names, row, strict=True)) for row in rows], schema=schema
    )
    return GoldSnapshot(
        table=GOLD,
        version=version,
        keys=("customer_id",),
        columns=columns,
        batches=lambda: iter(table.to_batches(max_chunksize=2)),
    )


def read_table(conn: SnowflakeConnection, target: str, names: list[str]) -> list[Row]:
    """Every row of ``target`` (``names`` in order), by key; NULL timestamps as None.

    fakesnow's server hands a NULL timestamp to the connector as 1970-01-01, so nullness is
    asked separately.
    """
    flags = [f"{name} IS NULL" for name in names]
    cursor = conn.cursor()
    cursor.execute(f"SELECT {', '.join(names + flags)} FROM {target} ORDER BY {names[0]}")
    return [
        tuple(
            None if is_null else value
            for value, is_null in zip(row[: len(names)], row[len(names) :], strict=True)
        )
        for row in cursor.fetchall()
    ]


def read_log(conn: SnowflakeConnection, target: str) -> list[Row]:
    """The publish log's rows of ``target``, oldest first, without their timestamps."""
    cursor = conn.cursor()
    cursor.execute(
        'SELECT TARGET, GOLD_TABLE, GOLD_VERSION, "ROWS" FROM ANALYTICS._MEDALLION_PUBLISH_LOG '
        "WHERE TARGET = %s ORDER BY PUBLISHED_AT",
        (target,),
    )
    return [tuple(row) for row in cursor.fetchall()]


def without_seconds(result: PublishResult) -> PublishResult:
    """``result`` with its duration zeroed, to compare whole results."""
    return dataclasses.replace(result, seconds=0.0)


NAMES = [column.name for column in COLUMNS]


@pytest.fixture(scope="module")
def snowflake_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A storage root with the Snowflake stand-in up; stopped at teardown."""
    root = tmp_path_factory.mktemp("snowflake-sink-root")
    snowflake_stack.up(StorageRoot(root))
    yield root
    snowflake_stack.down(StorageRoot(root))


@pytest.fixture(scope="module")
def settings(snowflake_root: Path) -> SnowflakeSettings:
    """Connection settings of the running stand-in."""
    info = snowflake_stack.status(StorageRoot(snowflake_root))
    if info is None:
        raise RuntimeError(f"the Snowflake stand-in is not running for {snowflake_root}")
    return snowflake_stack.settings_for(info)


@pytest.fixture(scope="module")
def sink(settings: SnowflakeSettings) -> SnowflakeSink:
    """The sink as the stand-in needs it; three rows per Parquet file, so files roll over."""
    return SnowflakeSink(settings, rows_per_file=3)


@pytest.fixture(scope="module")
def conn(snowflake_root: Path) -> Iterator[SnowflakeConnection]:
    """A connector session to read what the sink wrote."""
    connection = snowflake_stack.connect(StorageRoot(snowflake_root))
    yield connection
    connection.close()


def test_first_publish_creates_and_fills_the_target(
    sink: SnowflakeSink, conn: SnowflakeConnection
) -> None:
    """Schema, table (typed from gold) and log are created; every row arrives, nulls included."""
    result = sink.publish(make_snapshot(V1, version=1), "analytics.first_publish")

    assert without_seconds(result) == PublishResult(
        "snowflake", "ANALYTICS.FIRST_PUBLISH", GOLD, 1, skipped=False, rows_staged=4, inserted=4
    )
    assert read_table(conn, "ANALYTICS.FIRST_PUBLISH", NAMES) == V1
    assert read_log(conn, "ANALYTICS.FIRST_PUBLISH") == [("ANALYTICS.FIRST_PUBLISH", GOLD, 1, 4)]
    assert sink.published_version("ANALYTICS.FIRST_PUBLISH", GOLD) == 1
    cursor = conn.cursor()
    cursor.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE "
        "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'ANALYTICS' "
        "AND TABLE_NAME = 'FIRST_PUBLISH' ORDER BY ORDINAL_POSITION"
    )
    assert cursor.fetchall() == [
        ("CUSTOMER_ID", "TEXT", None, None),
        ("COUNTRY", "TEXT", None, None),
        ("ORDER_COUNT", "NUMBER", 38, 0),
        ("LAST_ORDER_TS", "TIMESTAMP_TZ", None, None),
        ("LIFETIME_VALUE_USD", "NUMBER", 18, 2),
        ("FIRST_SEEN", "DATE", None, None),
        ("SCORE", "FLOAT", None, None),
        ("ACTIVE", "BOOLEAN", None, None),
    ]


def test_second_publish_updates_inserts_and_deletes(
    sink: SnowflakeSink, conn: SnowflakeConnection
) -> None:
    """Changed rows are updated, unchanged ones left, new keys inserted, gone keys deleted."""
    target = "ANALYTICS.SECOND_PUBLISH"
    sink.publish(make_snapshot(V1, version=1), target)
    v2 = [
        ("c1", "DE", 4, T0 + timedelta(days=9), Decimal("150.00"), date(2026, 1, 5), 0.5, True),
        V1[1],  # unchanged
        ("c3", "IT", 0, None, None, None, None, False),  # nulls filled
        ("c5", "ES", 1, T0, Decimal("0.01"), date(2026, 11, 1), -1.5, False),  # new
    ]  # c4 deleted

    result = sink.publish(make_snapshot(v2, version=2), target)

    assert without_seconds(result) == PublishResult(
        "snowflake", target, GOLD, 2, skipped=False, rows_staged=4, inserted=1, updated=2,
        deleted=1,
    )  # fmt: skip
    assert read_table(conn, target, NAMES) == v2
    assert read_log(conn, target) == [(target, GOLD, 1, 4), (target, GOLD, 2, 4)]
    assert sink.published_version(target, GOLD) == 2


def test_republishing_the_held_version_is_a_no_op(
    sink: SnowflakeSink, conn: SnowflakeConnection
) -> None:
    """The held version is skipped untouched, even when handed different rows."""
    target = "ANALYTICS.REPUBLISH"
    sink.publish(make_snapshot(V1, version=7), target)

    result = sink.publish(make_snapshot(V1[:1], version=7), target)

    assert without_seconds(result) == PublishResult("snowflake", target, GOLD, 7, skipped=True)
    assert read_table(conn, target, NAMES) == V1
    assert read_log(conn, target) == [(target, GOLD, 7, 4)]


def test_a_new_gold_column_is_added_and_filled(
    sink: SnowflakeSink, conn: SnowflakeConnection
) -> None:
    """ALTER TABLE adds gold's new column; every row with a value for it is updated."""
    target = "ANALYTICS.NEW_COLUMN"
    sink.publish(make_snapshot(V1, version=1), target)
    columns = (*COLUMNS, GoldColumn("segment", "string"))
    v2 = [
        (*row, segment) for row, segment in zip(V1, ["gold", "silver", None, "gold"], strict=True)
    ]

    result = sink.publish(make_snapshot(v2, version=2, columns=columns), target)

    assert without_seconds(result) == PublishResult(
        "snowflake", target, GOLD, 2, skipped=False, rows_staged=4, updated=3,
        added_columns=("segment",),
    )  # fmt: skip
    assert read_table(conn, target, [*NAMES, "segment"]) == v2


def test_a_column_gold_dropped_stays_with_its_data(
    sink: SnowflakeSink, conn: SnowflakeConnection
) -> None:
    """A target column gold no longer has keeps its values; rows inserted since get NULL."""
    target = "ANALYTICS.DROPPED_COLUMN"
    sink.publish(make_snapshot(V1, version=1), target)
    columns = tuple(column for column in COLUMNS if column.name != "score")
    v2 = [row[:6] + row[7:] for row in V1] + [
        ("c9", "PL", 2, T0, Decimal("5.00"), date(2026, 3, 3), True)
    ]

    result = sink.publish(make_snapshot(v2, version=2, columns=columns), target)

    assert (result.inserted, result.updated, result.deleted, result.added_columns) == (1, 0, 0, ())
    assert read_table(conn, target, NAMES) == [*V1, ("c9", "PL", 2, T0, Decimal("5.00"),
                                                     date(2026, 3, 3), None, True)]  # fmt: skip


def test_an_empty_snapshot_empties_the_target(
    sink: SnowflakeSink, conn: SnowflakeConnection
) -> None:
    """A gold version without rows deletes every target row (the target mirrors gold)."""
    target = "ANALYTICS.EMPTIED"
    sink.publish(make_snapshot(V1, version=1), target)

    result = sink.publish(make_snapshot([], version=2), target)

    assert (result.rows_staged, result.inserted, result.updated, result.deleted) == (0, 0, 0, 4)
    assert read_table(conn, target, NAMES) == []
    assert read_log(conn, target) == [(target, GOLD, 1, 4), (target, GOLD, 2, 0)]


def test_a_failure_inside_the_transaction_leaves_the_target_unchanged(
    sink: SnowflakeSink, conn: SnowflakeConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording the version fails after upsert and delete ran: all of it is rolled back."""
    target = "ANALYTICS.ROLLED_BACK"
    sink.publish(make_snapshot(V1, version=1), target)

    def fail_to_record(cursor: Any, *_: object) -> None:
        cursor.execute("INSERT INTO ANALYTICS.NO_SUCH_TABLE VALUES (1)")

    monkeypatch.setattr(snowflake_sink, "_record_publish", fail_to_record)
    v2 = [(*V1[0][:2], 99, *V1[0][3:]), ("c8", "NL", 1, T0, Decimal("1.00"), None, None, None)]

    with pytest.raises(PublishError) as raised:
        sink.publish(make_snapshot(v2, version=2), target)

    assert str(raised.value).startswith(
        f"snowflake {target}: publishing {GOLD} version 2 failed and its rows are unchanged; "
        "ProgrammingError: "
    )
    assert "NO_SUCH_TABLE" in str(raised.value)

    assert read_table(conn, target, NAMES) == V1
    assert read_log(conn, target) == [(target, GOLD, 1, 4)]
    cursor = conn.cursor()
    cursor.execute(
        "SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_SCHEMA = 'ANALYTICS' AND TABLE_NAME LIKE '_MEDALLION_STAGE_%'"
    )
    assert cursor.fetchone() == (0,)


def test_duplicate_or_null_keys_are_refused_before_any_change(
    sink: SnowflakeSink, conn: SnowflakeConnection
) -> None:
    """A snapshot whose key is not unique and non-null fails, naming the counts found."""
    target = "ANALYTICS.BAD_KEYS"
    sink.publish(make_snapshot(V1, version=1), target)
    v2 = [*V1, V1[0], (None, "DE", 1, None, None, None, None, None)]

    with pytest.raises(PublishError, match="1 rows with a null key and 1 keys on more than one"):
        sink.publish(make_snapshot(v2, version=2), target)

    assert read_table(conn, target, NAMES) == V1
    assert sink.published_version(target, GOLD) == 1


def test_figures_are_exact(sink: SnowflakeSink) -> None:
    """Counts and sums beyond a double's precision come back exact."""
    target = "ANALYTICS.FIGURES"
    rows = [
        (f"c{n}", "DE", 2**53 + n, T0, Decimal("9999999999999999.99"), None, 0.1, None)
        for n in range(3)
    ]
    sink.publish(make_snapshot(rows, version=1), target)

    figures = sink.figures(target, "customer_id", ["lifetime_value_usd", "order_count", "score"])

    assert figures == Figures(
        rows=3,
        distinct_keys=3,
        sums={
            "lifetime_value_usd": Decimal("29999999999999999.97"),
            "order_count": Decimal(3 * 2**53 + 3),
            "score": Decimal(0.1 + 0.1 + 0.1),
        },
    )


def test_snowflake_down_raises_warehouse_unavailable_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing listening: after the retries the error names warehouse, address, account."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(PASSWORD_ENV, "pw-never-shown-42")
    down = SnowflakeSink(
        settings_from_env(host="127.0.0.1", port=port, protocol="http"),
        connect_attempts=2,
        initial_wait_seconds=0.01,
        max_wait_seconds=0.05,
        login_timeout_seconds=2,
    )

    with pytest.raises(WarehouseUnavailable) as raised:
        down.publish(make_snapshot(V1, version=1), "ANALYTICS.UNREACHABLE")

    message = str(raised.value)
    assert message.startswith(
        f"warehouse 'snowflake' unavailable at 127.0.0.1:{port} (account 'fakesnow'"
    )
    assert "after 2 attempts; last error: OperationalError" in message
    assert "pw-never-shown-42" not in message


def test_merge_statement_updates_differing_rows_and_inserts_new_keys(
    conn: SnowflakeConnection,
) -> None:
    """The MERGE updates only rows whose values differ (NULL included) and inserts new keys."""
    cursor = conn.cursor()
    # The other tests' publishes create the schema; this one may run alone on its worker.
    cursor.execute("CREATE SCHEMA IF NOT EXISTS ANALYTICS")
    for table, values in (("MERGE_T", "('a', 1), ('b', 2), ('c', NULL)"),
                          ("MERGE_S", "('a', 1), ('b', 20), ('c', 3), ('d', 4)")):  # fmt: skip
        cursor.execute(f'CREATE OR REPLACE TABLE ANALYTICS.{table} ("K" VARCHAR, "V" NUMBER)')
        cursor.execute(f"INSERT INTO ANALYTICS.{table} VALUES {values}")

    cursor.execute(
        merge_statement('"ANALYTICS"."MERGE_T"', '"ANALYTICS"."MERGE_S"', ['"K"'], ['"K"', '"V"'])
    )

    assert cursor.fetchall() == [(1, 2)]
    assert [d.name for d in cursor.description] == [
        "number of rows inserted",
        "number of rows updated",
    ]
    cursor.execute("SELECT K, V FROM ANALYTICS.MERGE_T ORDER BY K")
    assert cursor.fetchall() == [("a", 1), ("b", 20), ("c", 3), ("d", 4)]


def stage_tables(conn: SnowflakeConnection) -> list[str]:
    """The staging tables another session can see."""
    cursor = conn.cursor()
    cursor.execute(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_SCHEMA = 'ANALYTICS' AND TABLE_NAME LIKE '_MEDALLION_STAGE_%'"
    )
    return sorted(str(name) for (name,) in cursor.fetchall())


# A publish that hangs once its rows are staged (where a kill leaves its staging table behind).
HANGING_PUBLISH = """
import sys, time
from pathlib import Path
from medallion.platform.devstack import snowflake as snowflake_stack
from medallion.lakehouse.serving import snowflake as snowflake_sink
from medallion.lakehouse.storage import StorageRoot
from tests.lakehouse.serving.test_snowflake_sink import V1, make_snapshot

root, marker = StorageRoot(sys.argv[1]), Path(sys.argv[2])
def hang(*args):
    marker.write_text("staged")
    time.sleep(120)
snowflake_sink._check_keys = hang
settings = snowflake_stack.settings_for(snowflake_stack.status(root))
sink = snowflake_sink.SnowflakeSink(settings, rows_per_file=3)
sink.publish(make_snapshot(V1, version=1), "ANALYTICS.KILLED_MIDWAY")
"""


def test_a_publish_killed_midway_leaves_a_staging_table_the_next_publish_drops(
    sink: SnowflakeSink, conn: SnowflakeConnection, snowflake_root: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "staged"
    killed = subprocess.Popen([sys.executable, "-c", HANGING_PUBLISH, str(snowflake_root),
                               str(marker)], cwd=repo_root())
    deadline = time.monotonic() + 60
    while not marker.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the publish never reached its staged rows"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert [name.startswith("_MEDALLION_STAGE_KILLED_MIDWAY_") for name in stage_tables(conn)] \
        == [True]

    sink.publish(make_snapshot(V1, version=1), "ANALYTICS.KILLED_MIDWAY")

    assert stage_tables(conn) == []
    assert read_table(conn, "ANALYTICS.KILLED_MIDWAY", NAMES) == V1


def test_a_staging_table_left_by_a_killed_publish_is_dropped_by_the_next(
    sink: SnowflakeSink, conn: SnowflakeConnection
) -> None:
    target = "ANALYTICS.AFTER_A_KILL"
    sink.publish(make_snapshot(V1, version=1), target)
    left = "_MEDALLION_STAGE_AFTER_A_KILL_0123456789AB"  # as an older, transient publish left it
    other = "_MEDALLION_STAGE_ANOTHER_TABLE_0123456789AB"
    for name in (left, other):
        conn.cursor().execute(f'CREATE TRANSIENT TABLE ANALYTICS."{name}" (ID INT)')

    sink.publish(make_snapshot(V1[:2], version=2), target)

    assert stage_tables(conn) == [other]  # only this target's leftovers are its to drop
    assert read_table(conn, target, NAMES) == V1[:2]
    conn.cursor().execute(f'DROP TABLE ANALYTICS."{other}"')
