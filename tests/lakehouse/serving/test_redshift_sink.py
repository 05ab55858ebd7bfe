"""The Redshift sink against the real PostgreSQL 15 stand-in: publish, re-publish, evolve, fail.

Snapshots are built from pyarrow (no Spark). The Redshift-only path (Parquet files + COPY) is
checked through its SQL (sqlglot's Redshift dialect) and a recording fake connection.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from medallion.lakehouse.clients import redshift as redshift_client
from medallion.lakehouse.clients.redshift import RedshiftSettings
from medallion.lakehouse.errors import ConfigError, PublishError, WarehouseUnavailable
from medallion.lakehouse.serving import Figures, GoldColumn, GoldSnapshot, PublishResult
from medallion.lakehouse.serving.redshift import RedshiftSink
from medallion.lakehouse.serving.redshift_sessions import (
    ParquetStaging,
    PostgresSession,
    RedshiftSession,
)
from medallion.lakehouse.serving.redshift_sql import (
    POSTGRES,
    REDSHIFT,
    Dialect,
    Statements,
    TableName,
)
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack import postgres
from medallion.platform.devstack.service import ServiceInfo
from tests.lakehouse.sources.redshift import conftest as redshift_slice
from tests.lakehouse.sources.redshift.conftest import closed_port

# The Redshift slice's session fixtures: one real PostgreSQL 15 stand-in for this module.
pg_root = redshift_slice.pg_root
pg_service = redshift_slice.pg_service

TARGET = "redshift_analytics.gold_customer_360"
GOLD = "gold.fact_customer_360"
IAM_ROLE = "arn:aws:iam::123456789012:role/redshift-copy"
COLUMNS = (
    GoldColumn("customer_id", "string"),
    GoldColumn("lifetime_value_usd", "decimal(18,2)"),
    GoldColumn("order_count", "bigint"),
    GoldColumn("last_order_ts", "timestamp"),
    GoldColumn("first_order_date", "date"),
    GoldColumn("avg_basket_usd", "double"),
    GoldColumn("is_active", "boolean"),
)
ARROW_TYPES = {
    "string": pa.string(),
    "bigint": pa.int64(),
    "decimal(18,2)": pa.decimal128(18, 2),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}
TS = datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=UTC)
DAY = date(2026, 1, 15)


def customer(
    customer_id: str | None, value: str, orders: int, basket: float | None = 10.5, **changes: Any
) -> tuple[Any, ...]:
    """One gold row in ``COLUMNS`` order."""
    row = {
        "customer_id": customer_id,
        "lifetime_value_usd": Decimal(value),
        "order_count": orders,
        "last_order_ts": TS,
        "first_order_date": DAY,
        "avg_basket_usd": basket,
        "is_active": True,
        **changes,
    }
    return tuple(row.values())


def snapshot(
    version: int, rows: Sequence[tuple[Any, ...]], columns: Sequence[GoldColumn] = COLUMNS
) -> GoldSnapshot:
    """A gold snapshot of ``rows``, served as record batches of two rows."""
    schema = pa.schema([(column.name, ARROW_TYPES[column.type]) for column in columns])
    table = pa.Table.from_pylist(
        [dict(zip(schema.names, row, strict=True)) for row in rows], schema
    )
    return GoldSnapshot(
        table=GOLD,
        version=version,
        keys=("customer_id",),
        columns=tuple(columns),
        batches=lambda: iter(table.to_batches(max_chunksize=2)),
    )


def published(version: int, **counts: Any) -> PublishResult:
    """The expected result of publishing ``version`` (``seconds`` zeroed)."""
    return PublishResult("redshift", TARGET, GOLD, version, skipped=False, **counts)


def without_seconds(result: PublishResult) -> PublishResult:
    return replace(result, seconds=0.0)


def table_rows(db: psycopg.Connection, extra: str = "") -> list[tuple[Any, ...]]:
    """Every target row, by key."""
    return db.execute(f"SELECT *{extra} FROM {TARGET} ORDER BY customer_id").fetchall()


def table_columns(db: psycopg.Connection) -> list[str]:
    rows = db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s ORDER BY ordinal_position",
        TARGET.split("."),
    ).fetchall()
    return [row[0] for row in rows]


def log_rows(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    """The publish log, oldest first."""
    return db.execute(
        "SELECT target, gold_table, gold_version, rows "
        "FROM redshift_analytics._medallion_publish_log ORDER BY published_at"
    ).fetchall()


@pytest.fixture
def db(pg_root: Path, pg_service: ServiceInfo) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the stand-in, with no ``redshift_analytics`` schema."""
    conn = postgres.connect(StorageRoot(pg_root))
    conn.autocommit = True
    conn.execute("DROP SCHEMA IF EXISTS redshift_analytics CASCADE")
    yield conn
    conn.close()


@pytest.fixture
def sink(db: psycopg.Connection, pg_root: Path) -> RedshiftSink:
    """The sink, publishing to the stand-in."""
    settings = postgres.client_settings(StorageRoot(pg_root))
    assert settings is not None
    return RedshiftSink.postgres(settings)


V1 = [customer("C001", "120.50", 3), customer("C002", "80.00", 2), customer("C003", "0.10", 1)]


def test_published_version_is_none_before_the_first_publish(sink: RedshiftSink) -> None:
    assert sink.published_version(TARGET, GOLD) is None


def test_first_publish_creates_the_table_and_copies_every_row(
    sink: RedshiftSink, db: psycopg.Connection
) -> None:
    result = sink.publish(snapshot(1, V1), TARGET)

    assert without_seconds(result) == published(1, rows_staged=3, inserted=3)
    assert table_rows(db) == V1
    assert log_rows(db) == [(TARGET, GOLD, 1, 3)]
    assert sink.published_version(TARGET, GOLD) == 1


def test_awkward_values_are_staged_exactly(sink: RedshiftSink, db: psycopg.Connection) -> None:
    columns = (
        GoldColumn("customer_id", "string"),
        GoldColumn("note", "string"),
        GoldColumn("score", "double"),
        GoldColumn("seen_at", "timestamp"),
    )
    notes = ["", 'say "hi"', "a,b;c", "two\nlines", "ünïcødé ✓", "\\.", None]
    scores = [0.1 + 0.2, 1e-300, -0.0, 1.7976931348623157e308, 1 / 3, -2.5, None]
    seen = [  # naive, as Spark's TIMESTAMP_NTZ arrives: read as UTC instants
        datetime(1, 1, 1),
        datetime(1969, 12, 31, 23, 59, 59, 999999),
        datetime(2026, 3, 29, 1, 30),
        None,
        datetime(9999, 12, 31, 23, 59, 59),
        datetime(2026, 11, 2, 9, 30, 15, 1),
        datetime(2000, 2, 29),
    ]
    ids = [f"C{i}" for i in range(len(notes))]
    table = pa.table(
        {
            "customer_id": ids,
            "note": notes,
            "score": pa.array(scores, pa.float64()),
            "seen_at": pa.array(seen, pa.timestamp("us")),
        }
    )
    gold = GoldSnapshot(
        GOLD, 1, ("customer_id",), columns, lambda: iter(table.to_batches(max_chunksize=3))
    )

    sink.publish(gold, TARGET)

    utc = [None if instant is None else instant.replace(tzinfo=UTC) for instant in seen]
    assert table_rows(db) == list(zip(ids, notes, scores, utc, strict=True))


def test_second_publish_updates_inserts_and_deletes_exactly(
    sink: RedshiftSink, db: psycopg.Connection
) -> None:
    first = [
        customer("C001", "120.50", 3),
        customer("C002", "80.00", 2),
        customer("C003", "5.00", 1, basket=None),
        customer("C004", "9.99", 1),
        customer("C006", "1.00", 1),
    ]
    second = [
        customer("C001", "120.50", 3),  # unchanged
        customer("C002", "95.25", 3),  # values changed
        customer("C003", "5.00", 1, basket=5.0),  # NULL -> value
        customer("C005", "42.00", 1),  # new; C004 is gone
        customer("C006", "1.00", 1, is_active=None),  # value -> NULL
    ]
    sink.publish(snapshot(1, first), TARGET)

    result = sink.publish(snapshot(2, second), TARGET)

    assert without_seconds(result) == published(2, rows_staged=5, inserted=1, updated=3, deleted=1)
    assert table_rows(db) == second
    assert log_rows(db) == [(TARGET, GOLD, 1, 5), (TARGET, GOLD, 2, 5)]
    assert sink.published_version(TARGET, GOLD) == 2


def test_republishing_the_held_version_touches_nothing(
    sink: RedshiftSink, db: psycopg.Connection
) -> None:
    sink.publish(snapshot(1, V1), TARGET)
    rows_with_versions = table_rows(db, ", xmin::text, ctid::text")
    log_before = log_rows(db)

    result = sink.publish(snapshot(1, [customer("C009", "1.00", 1)]), TARGET)

    assert without_seconds(result) == PublishResult("redshift", TARGET, GOLD, 1, skipped=True)
    assert table_rows(db, ", xmin::text, ctid::text") == rows_with_versions
    assert log_rows(db) == log_before


def test_a_new_gold_column_is_added_and_filled(sink: RedshiftSink, db: psycopg.Connection) -> None:
    sink.publish(snapshot(1, V1), TARGET)
    columns = (*COLUMNS, GoldColumn("segment", "string"))
    second = [(*V1[0], "gold"), (*V1[1], "silver"), (*V1[2], None)]

    result = sink.publish(snapshot(2, second, columns), TARGET)

    assert without_seconds(result) == published(
        2, rows_staged=3, updated=2, added_columns=("segment",)
    )
    assert table_columns(db) == [column.name for column in columns]
    assert table_rows(db) == second


def test_a_column_gold_dropped_is_kept_and_null_on_new_rows(
    sink: RedshiftSink, db: psycopg.Connection
) -> None:
    sink.publish(snapshot(1, V1), TARGET)
    columns = tuple(column for column in COLUMNS if column.name != "avg_basket_usd")
    second = [
        tuple(value for i, value in enumerate(row) if i != 5)
        for row in [*V1, customer("C004", "7.00", 1)]
    ]

    result = sink.publish(snapshot(2, second, columns), TARGET)

    assert without_seconds(result) == published(2, rows_staged=4, inserted=1)
    assert table_columns(db) == [column.name for column in COLUMNS]
    assert table_rows(db) == [*V1, customer("C004", "7.00", 1, basket=None)]


def test_an_unreachable_warehouse_is_named_without_its_password() -> None:
    port = closed_port()
    secret = "pa55-W0rd-never-shown"
    sink = RedshiftSink.postgres(
        RedshiftSettings(redshift_client.POSTGRESQL, "127.0.0.1", port, "redshift_analytics",
                         "medallion", secret),
        attempts=2, initial_wait_seconds=0.01,
    )  # fmt: skip

    with pytest.raises(WarehouseUnavailable) as raised:
        sink.publish(snapshot(1, V1), TARGET)

    message = str(raised.value)
    assert f"warehouse 'redshift' at 127.0.0.1:{port}/redshift_analytics" in message
    assert "after 2 attempt(s); last error:" in message
    assert secret not in message


def test_a_snapshot_whose_key_is_not_a_column_is_refused_before_connecting() -> None:
    sink = RedshiftSink.postgres(
        RedshiftSettings(redshift_client.POSTGRESQL, "127.0.0.1", closed_port(),
                         "redshift_analytics", "m")
    )
    keyless = replace(snapshot(1, V1), keys=("account_id",))

    with pytest.raises(ConfigError, match=re.escape("found keys ['account_id']")):
        sink.publish(keyless, TARGET)


def test_a_failure_mid_transaction_leaves_the_target_unchanged(
    sink: RedshiftSink, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink.publish(snapshot(1, V1), TARGET)
    execute = PostgresSession.execute

    def lose_connection_on_insert(
        self: PostgresSession, statement: str, params: Sequence[Any] = ()
    ) -> int:
        if statement.startswith(f"INSERT INTO {TableName.parse(TARGET).sql}"):
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return execute(self, statement, params)

    monkeypatch.setattr(PostgresSession, "execute", lose_connection_on_insert)
    columns = (*COLUMNS, GoldColumn("segment", "string"))
    second = [(*customer("C001", "1.00", 9), "gold"), (*customer("C004", "2.00", 1), None)]

    with pytest.raises(PublishError) as raised:
        sink.publish(snapshot(2, second, columns), TARGET)

    message = str(raised.value)
    assert message.startswith(f"redshift {TARGET} at 127.0.0.1:")
    assert "failed while inserting new keys; rolled back, the target is unchanged" in message
    assert table_columns(db) == [column.name for column in COLUMNS]
    assert table_rows(db) == V1
    assert log_rows(db) == [(TARGET, GOLD, 1, 3)]


@pytest.mark.parametrize(
    ("bad_rows", "found"),
    [
        ([customer(None, "1.00", 1)], "found 1 row(s) with a NULL key and 0 key(s) staged"),
        ([customer("C001", "1.00", 1)] * 2, "found 0 row(s) with a NULL key and 1 key(s) staged"),
    ],
    ids=["null-key", "duplicated-key"],
)
def test_bad_keys_fail_the_publish_and_leave_the_target_unchanged(
    sink: RedshiftSink, db: psycopg.Connection, bad_rows: list[tuple[Any, ...]], found: str
) -> None:
    sink.publish(snapshot(1, V1), TARGET)

    with pytest.raises(PublishError, match=re.escape(found)) as raised:
        sink.publish(snapshot(2, [*V1[1:], *bad_rows]), TARGET)

    assert "failed while checking the staged keys" in str(raised.value)
    assert table_rows(db) == V1
    assert log_rows(db) == [(TARGET, GOLD, 1, 3)]


def test_figures_are_exact(sink: RedshiftSink) -> None:
    rows = [
        customer("C001", "0.10", 9_007_199_254_740_993),  # above 2**53: a float would round
        customer("C002", "0.20", 1),
        customer("C003", "1234567890123456.70", 2),
        customer("C004", "0.00", 0, lifetime_value_usd=None),
    ]
    sink.publish(snapshot(1, rows), TARGET)

    figures = sink.figures(TARGET, "customer_id", ["lifetime_value_usd", "order_count"])

    assert figures == Figures(
        rows=4,
        distinct_keys=4,
        sums={
            "lifetime_value_usd": Decimal("1234567890123457.00"),
            "order_count": Decimal(9_007_199_254_740_996),
        },
    )
    assert all(isinstance(value, Decimal) for value in figures.sums.values())


def redshift_statements() -> dict[str, str]:
    """Every statement the REDSHIFT dialect builds, by name."""
    sql = Statements(REDSHIFT)
    target, keys = TableName.parse(TARGET), ("customer_id",)
    names = [column.name for column in COLUMNS]
    update = sql.update_changed(target, keys, names)
    assert update is not None
    return {
        "create_schema": sql.create_schema(target),
        "create_table": sql.create_table(target, COLUMNS, keys),
        "create_publish_log": sql.create_publish_log(target),
        "create_staging": sql.create_staging(COLUMNS),
        "copy_from_files": sql.copy_from_files("s3://lake/_staging/redshift/x/", IAM_ROLE),
        "count_staged": sql.count_staged(),
        "count_null_keys": sql.count_null_keys(keys),
        "count_duplicated_keys": sql.count_duplicated_keys(keys),
        "table_exists": sql.table_exists(),
        "existing_columns": sql.existing_columns(),
        "held_version": sql.held_version(target),
        "add_column": sql.add_column(target, GoldColumn("segment", "string")),
        "delete_absent": sql.delete_absent(target, keys),
        "update_changed": update,
        "insert_new": sql.insert_new(target, keys, names),
        "record_publish": sql.record_publish(target),
        "drop_staging": sql.drop_staging(),
        "figures": sql.figures(target, "customer_id", ["lifetime_value_usd", "order_count"]),
    }


@pytest.mark.parametrize(("name", "statement"), redshift_statements().items())
def test_every_redshift_statement_parses_as_redshift_sql(name: str, statement: str) -> None:
    parsed = sqlglot.parse_one(statement, read="redshift")

    assert not isinstance(parsed, exp.Command), f"{name} only parsed as an opaque command"
    assert "IS DISTINCT FROM" not in statement
    assert " TEXT" not in statement  # Redshift's TEXT is VARCHAR(256)


def test_redshift_needs_no_lock_statement() -> None:
    assert Statements(REDSHIFT).lock(TableName.parse(TARGET)) is None


@pytest.mark.parametrize("dialect", [POSTGRES, REDSHIFT], ids=lambda d: d.name)
def test_differs_treats_null_as_a_value(dialect: Dialect, db: psycopg.Connection) -> None:
    pairs = [(None, None), (None, 1), (1, None), (1, 1), (1, 2)]

    predicate = dialect.differs("a", "b")
    statement = f"SELECT ({predicate}) IS TRUE FROM (VALUES (%s::int, %s::int)) AS v(a, b)"

    found = [db.execute(statement, pair).fetchone() for pair in pairs]

    assert found == [(False,), (True,), (True,), (False,), (True,)]


@pytest.mark.parametrize(
    ("logical", "postgres_type", "redshift_type"),
    [
        ("string", "TEXT", "VARCHAR(65535)"),
        ("bigint", "BIGINT", "BIGINT"),
        ("decimal(18,2)", "DECIMAL(18, 2)", "DECIMAL(18, 2)"),
        ("timestamp", "TIMESTAMPTZ", "TIMESTAMPTZ"),
        ("date", "DATE", "DATE"),
        ("double", "DOUBLE PRECISION", "DOUBLE PRECISION"),
        ("boolean", "BOOLEAN", "BOOLEAN"),
    ],
)
def test_logical_types_map_to_each_dialect(
    logical: str, postgres_type: str, redshift_type: str
) -> None:
    column = GoldColumn("c", logical)

    assert (POSTGRES.column_type(column), REDSHIFT.column_type(column)) == (
        postgres_type,
        redshift_type,
    )


@pytest.mark.parametrize("logical", ["decimal(39,2)", "decimal(5,6)", "array<string>"])
def test_types_redshift_cannot_hold_are_refused_by_name(logical: str) -> None:
    with pytest.raises(ConfigError, match=r"gold column 'c': type .* cannot be served by redshift"):
        REDSHIFT.column_type(GoldColumn("c", logical))


@pytest.mark.parametrize("target", ["gold_customer_360", "a.b.c", "Analytics.customers", "a.b;--"])
def test_a_malformed_target_is_refused(target: str) -> None:
    with pytest.raises(
        ConfigError, match=re.escape("expected schema.table in lowercase snake_case")
    ):
        TableName.parse(target)


class RecordingCursor:
    """A DB-API cursor that records statements; COPY "loads" the Parquet files it names."""

    def __init__(self, connection: RecordingConnection) -> None:
        self.connection = connection
        self.rows: list[tuple[Any, ...]] = []
        self.rowcount = -1

    def execute(self, statement: str, params: Sequence[Any] | None = None) -> None:
        self.connection.statements.append(statement)
        if statement.startswith("COPY "):
            uri = re.search(r"FROM '([^']+)'", statement)
            assert uri is not None
            self.connection.loaded = pq.read_table(uri[1])
        if statement.startswith("SELECT count(*)"):
            self.rows = [(self.connection.loaded.num_rows,)]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


class RecordingConnection:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.loaded = pa.table({})
        self.closed = False

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self)

    def close(self) -> None:
        self.closed = True


def test_the_redshift_path_copies_the_snapshot_from_parquet_files(tmp_path: Path) -> None:
    connection = RecordingConnection()
    session = RedshiftSession(connection, ParquetStaging(tmp_path, rows_per_file=2), IAM_ROLE)
    gold = snapshot(7, V1)

    staged = session.load_staging(gold)
    prefix = session.staged[0].uri
    files = sorted(path.name for path in Path(prefix).iterdir())
    session.close()

    assert staged == 3
    assert files == ["part-00000.parquet", "part-00001.parquet"]
    assert connection.statements == [
        f"COPY _medallion_staging FROM '{prefix}' IAM_ROLE '{IAM_ROLE}' FORMAT AS PARQUET",
        "SELECT count(*) FROM _medallion_staging",
    ]
    assert connection.loaded.to_pylist() == pa.Table.from_batches(list(gold.batches())).to_pylist()
    assert prefix.startswith(f"{tmp_path}/_staging/redshift/{GOLD}/v7-")
    assert connection.closed
    assert not Path(prefix).exists()


def test_files_a_killed_publish_left_are_deleted_before_the_next_stages(tmp_path: Path) -> None:
    left = tmp_path / "_staging" / "redshift" / GOLD / "v6-0123456789abcdef"
    left.mkdir(parents=True)
    (left / "part-00000.parquet").write_bytes(b"from a publish that was killed")
    other = tmp_path / "_staging" / "redshift" / "gold.orders_daily" / "v2-0123456789abcdef"
    other.mkdir(parents=True)
    staging = ParquetStaging(tmp_path)

    staged = staging.write(snapshot(7, V1))

    prefixes = sorted(p.name for p in (tmp_path / "_staging" / "redshift" / GOLD).iterdir())
    assert prefixes == [Path(staged.uri).name]  # only the new publish's own files
    assert other.exists()  # another table's files are its own publish's business


def test_a_missing_redshift_connector_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "redshift_connector", None)

    with pytest.raises(ConfigError, match=re.escape("pip install redshift_connector")):
        RedshiftSink.redshift(
            RedshiftSettings(redshift_client.REDSHIFT, "cluster.example.com", 5439, "analytics",
                             "loader", "secret"),
            iam_role=IAM_ROLE, staging_area=ParquetStaging(tmp_path),
        )  # fmt: skip
