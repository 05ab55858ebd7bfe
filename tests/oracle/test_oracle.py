"""The gold oracle checked against plain Python, the generator's manifest and its own claims.

One small data set (seed 11, scale 0.3, 3 days: 300 customers, 1,500 orders, 6,000 events).
The reference computations are plain Python over the generator's records (orders_daily takes
the oracle's customer dimension as input; the dimension is checked on its own).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import duckdb
import pandas as pd
import pytest

from medallion.platform.generate import (
    KEY_COLUMNS,
    DirtKind,
    GeneratedData,
    GeneratorConfig,
    generate,
    late_crm_updates,
    orders_snapshot,
    vocab,
)
from tests.oracle import oracle
from tests.oracle.oracle import (
    FACT_CUSTOMER_360_COLUMNS,
    ORDERS_DAILY_COLUMNS,
    ExpectedGold,
    expected_gold,
    oracle_connection,
    served_records,
)

CONFIG = GeneratorConfig(seed=11, scale=0.3, days=3)
SALT = "oracle-test-salt"
SESSION_RE = re.compile(r"^sess_[0-9a-f]{16}$")
DECIMAL_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
ORDER_KEYS = ("order_id", "customer_id", "order_ts", "status", "currency", "order_amount")


@pytest.fixture(scope="module")
def data() -> GeneratedData:
    """The small data set every test uses."""
    return generate(CONFIG)


@pytest.fixture(scope="module")
def through(data: GeneratedData) -> date:
    """The last loaded day."""
    return data.config.start_date + timedelta(days=data.config.days - 1)


@pytest.fixture(scope="module")
def con(data: GeneratedData, through: date) -> Iterator[duckdb.DuckDBPyConnection]:
    """The oracle's database through the last day."""
    connection = oracle_connection(data, through=through, salt=SALT)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def gold(data: GeneratedData, through: date) -> ExpectedGold:
    """The expected gold tables through the last day."""
    return expected_gold(data, through=through, salt=SALT)


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first row of a query (it must have one); its only value if it has one column."""
    row = con.execute(sql, params or []).fetchone()
    assert row is not None, sql
    return row[0] if len(row) == 1 else row


def _column(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    """The first column of a query's rows."""
    return [row[0] for row in con.execute(sql).fetchall()]


# ---- plain-Python reference ---------------------------------------------------------------


def spark_usd(amount: Decimal, rate: Decimal) -> Decimal:
    """Spark's ``round(decimal(18,2) / decimal(18,8), 2)``, exactly, with fractions.

    The quotient is computed by Java's BigDecimal at scale 39 (HALF_UP), cast to the result type
    decimal(38,14) (HALF_UP), then rounded to 2 places (HALF_UP: ties away from zero).
    """
    value = Fraction(amount) / Fraction(rate)
    for scale in (39, 14, 2):
        value = _round_half_up(value, scale)
    return Decimal(int(value * 100)).scaleb(-2)


def exact_usd(amount: Decimal, rate: Decimal) -> Decimal:
    """The exact quotient rounded once, half-up, to cents."""
    value = _round_half_up(Fraction(amount) / Fraction(rate), 2)
    return Decimal(int(value * 100)).scaleb(-2)


def _round_half_up(value: Fraction, scale: int) -> Fraction:
    """``value`` rounded to ``scale`` places, ties away from zero."""
    rounded = int(abs(value) * 10**scale + Fraction(1, 2))  # floor(x + 1/2), x >= 0
    return Fraction(rounded if value >= 0 else -rounded, 10**scale)


def _as_decimal(value: Any) -> Decimal | None:
    """An amount as Spark would cast its raw text to decimal(18,2), or None if it cannot."""
    if isinstance(value, bool) or value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return Decimal(text).quantize(Decimal("0.01")) if DECIMAL_RE.match(text) else None


def _naive(moment: datetime) -> pd.Timestamp:
    """An aware datetime as a naive UTC pandas timestamp."""
    return pd.Timestamp(moment.astimezone(UTC).replace(tzinfo=None))


def _rates(data: GeneratedData, through: date) -> dict[tuple[date, str], Decimal]:
    """Every USD rate served through ``through``."""
    return {
        (rate["date"], rate["currency"]): Decimal(repr(rate["rate"]))
        for rate in data.fx_rates
        if rate["date"] <= through
    }


def _usd_rate(rates: dict[tuple[date, str], Decimal], day: date, currency: str) -> Decimal:
    """The rate of ``day``, else the latest earlier one; USD is 1."""
    if currency == "USD":
        return Decimal(1)
    dated = [d for (d, c) in rates if c == currency and d <= day]
    return rates[(max(dated), currency)]


def _valid_order(row: dict[str, Any], amount_column: str) -> bool:
    """The order rules that do not need the customer dimension."""
    amount = _as_decimal(row[amount_column])
    return (
        row["order_id"] is not None
        and amount is not None
        and amount >= 0
        and row["currency"] in vocab.ORDER_CURRENCIES
        and row.get("status", "placed") in vocab.ORDER_STATUSES
    )


def python_orders(
    data: GeneratedData, through: date, customer_ids: set[str]
) -> list[dict[str, Any]]:
    """The silver orders of ``customer_ids``: latest valid Snowflake version, else Kafka's."""
    end = datetime.combine(through + timedelta(days=1), datetime.min.time(), UTC)
    latest: dict[str, dict[str, Any]] = {}
    for row in orders_snapshot(data, through):
        if row["customer_id"] not in customer_ids or not _valid_order(row, "order_amount"):
            continue
        if row["order_id"] not in latest or row["updated_at"] > latest[row["order_id"]]["ts"]:
            latest[row["order_id"]] = {
                **row, "ts": row["updated_at"], "order_amount": _as_decimal(row["order_amount"])
            }  # fmt: skip
    kafka_only: dict[str, list[dict[str, Any]]] = {}
    for event in data.kafka_order_events:
        if event["event_ts"] >= end or event["customer_id"] not in customer_ids:
            continue
        if not _valid_order(event, "amount") or event["op"] not in vocab.KAFKA_OPS:
            continue
        if event["order_id"] in latest:  # Snowflake's version is never older than its events
            assert event["event_ts"] <= latest[event["order_id"]]["ts"]
        else:
            kafka_only.setdefault(event["order_id"], []).append(event)
    for order_id, events in kafka_only.items():
        status, order_ts = None, None
        for event in sorted(events, key=lambda e: e["event_ts"]):
            status = {"c": "placed", "d": "cancelled"}.get(event["op"], status)
            order_ts = event["event_ts"] if event["op"] == "c" else order_ts
        last = max(events, key=lambda e: e["event_ts"])
        latest[order_id] = {
            "order_id": order_id, "customer_id": last["customer_id"], "order_ts": order_ts,
            "status": status, "currency": last["currency"],
            "order_amount": _as_decimal(last["amount"]), "ts": last["event_ts"],
        }  # fmt: skip
    return list(latest.values())


def python_customer_row(
    data: GeneratedData, through: date, customer_id: str, salt: str
) -> dict[str, Any]:
    """One customer's gold row, from the records alone (for a customer the CRM serves whole)."""
    end = datetime.combine(through + timedelta(days=1), datetime.min.time(), UTC)
    versions = [
        v
        for v in data.crm_accounts
        if v["customer_id"] == customer_id
        and v["available_on"] <= through
        and v["lifecycle_stage"] in vocab.LIFECYCLE_STAGES
    ]
    crm = max(versions, key=lambda v: v["last_modified_date"])
    orders = python_orders(data, through, {customer_id})
    rates = _rates(data, through)
    ltv = sum(
        (
            spark_usd(o["order_amount"], _usd_rate(rates, o["order_ts"].date(), o["currency"]))
            for o in orders
            if o["status"] not in ("cancelled", "returned")
        ),
        Decimal("0.00"),
    )
    events = {
        e["event_id"]: e
        for e in data.behavior_events
        if e["customer_id"] == customer_id
        and e["event_ts"] < end
        and e["event_id"] is not None
        and e["event_type"] in vocab.EVENT_TYPES
        and e["device"] in vocab.DEVICES
        and SESSION_RE.match(e["session_id"])
    }
    order_times = [o["order_ts"] for o in orders]
    event_times = [e["event_ts"] for e in events.values()]
    digits = "".join(ch for ch in crm["phone"] if ch.isdigit())
    return {
        "customer_id": hashlib.sha256(f"{salt}:{customer_id}".encode()).hexdigest(),
        "name_masked": crm["name"][0] + "***",
        "email_masked": crm["email"][0] + "***@" + crm["email"].split("@")[-1],
        "phone_masked": "***" + digits[-2:],
        "country": crm["country"],
        "lifecycle_stage": crm["lifecycle_stage"],
        "order_count": len(orders),
        "first_order_ts": _naive(min(order_times)) if order_times else pd.NaT,
        "last_order_ts": _naive(max(order_times)) if order_times else pd.NaT,
        "lifetime_value_usd": ltv,
        "event_count": len(events),
        "session_count": len({e["session_id"] for e in events.values()}),
        "last_seen_ts": _naive(max(event_times)) if event_times else pd.NaT,
    }


def _row_of(frame: pd.DataFrame, hashed_id: str) -> dict[str, Any]:
    """The one row of ``frame`` with that hashed customer_id."""
    rows = frame[frame["customer_id"] == hashed_id].to_dict("records")
    assert len(rows) == 1, hashed_id
    row: dict[str, Any] = rows[0]
    return row


def _same(left: Any, right: Any) -> bool:
    """Equal, NaT/None counting as equal to each other."""
    if pd.isna(left) or pd.isna(right):
        return bool(pd.isna(left) and pd.isna(right))
    return bool(left == right)


# ---- tests --------------------------------------------------------------------------------


def test_value_sets_agree_with_the_generator_vocabulary() -> None:
    """The oracle's own value sets are the ones the generator draws clean values from."""
    assert oracle.ORDER_STATUSES == vocab.ORDER_STATUSES
    assert set(oracle.CURRENCIES) == set(vocab.ORDER_CURRENCIES)
    assert oracle.EVENT_TYPES == vocab.EVENT_TYPES
    assert oracle.DEVICES == vocab.DEVICES
    assert oracle.LIFECYCLE_STAGES == vocab.LIFECYCLE_STAGES
    assert oracle.KAFKA_OPS == vocab.KAFKA_OPS
    assert oracle.SESSION_ID_PATTERN == vocab.SESSION_ID_PATTERN


def test_gold_shapes_types_and_keys(gold: ExpectedGold, con: duckdb.DuckDBPyConnection) -> None:
    """Columns in the doc's order, toPandas-like dtypes, unique keys, one row per customer."""
    facts, daily = gold.fact_customer_360, gold.orders_daily
    assert tuple(facts.columns) == FACT_CUSTOMER_360_COLUMNS
    assert tuple(daily.columns) == ORDERS_DAILY_COLUMNS
    for column in ("order_count", "event_count", "session_count"):
        assert facts[column].dtype == "int64"
    for column in ("first_order_ts", "last_order_ts", "last_seen_ts"):
        assert facts[column].dtype == "datetime64[ns]"
    assert daily["orders"].dtype == "int64"
    assert all(isinstance(value, Decimal) for value in facts["lifetime_value_usd"])
    assert all(isinstance(value, Decimal) for value in daily["revenue_usd"])
    assert all(type(value) is date for value in daily["order_date"])
    assert facts["customer_id"].is_unique
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in facts["customer_id"])
    assert not daily.duplicated(["order_date", "currency"]).any()
    assert len(facts) == _one(con, "SELECT count(*) FROM silver_dim_customer")
    assert facts["email_masked"].str.fullmatch(r"[a-z]\*\*\*@[a-z.]+").all()
    assert facts["phone_masked"].str.fullmatch(r"\*\*\*[0-9]{2}").all()
    assert (facts["lifetime_value_usd"] >= 0).all()
    no_orders = facts[facts["order_count"] == 0]
    assert not no_orders.empty  # the data set has customers without orders: 0 / NaT for them
    assert (no_orders["lifetime_value_usd"] == 0).all()
    assert no_orders["first_order_ts"].isna().all()
    assert facts["first_order_ts"].isna().sum() == len(no_orders)
    assert facts["last_seen_ts"].isna().sum() == (facts["event_count"] == 0).sum()


def _hand_picked(data: GeneratedData, through: date, con: duckdb.DuckDBPyConnection) -> list[str]:
    """Customers worth a hand check, among those the CRM serves whole (no CRM dirt)."""
    crm_dirty = {e.key for e in data.manifest if e.source == "crm_accounts"}
    manifest_key = {(e.source, e.kind): e.key for e in data.manifest}
    kafka_only = manifest_key[("kafka_order_events", DirtKind.UNKNOWN_COLUMN)]
    later_version = manifest_key[("snowflake_orders", DirtKind.DUPLICATE_KEY)]
    picks = [
        # the customer with the most orders
        _column(con, "SELECT customer_id FROM silver_fact_orders GROUP BY 1 "
                     "ORDER BY count(*) DESC, 1 LIMIT 1")[0],
        # one with a returned order, one with a cancelled order
        _column(con, "SELECT min(customer_id) FROM silver_fact_orders WHERE status='returned'")[0],
        _column(con, "SELECT min(customer_id) FROM silver_fact_orders WHERE status='cancelled'")[0],
        # the owner of an order only Kafka knows, and of a Snowflake duplicate key
        next(e["customer_id"] for e in data.kafka_order_events if e["order_id"] == kafka_only),
        next(o["customer_id"] for o in data.snowflake_orders if o["order_id"] == later_version),
        # a customer whose CRM update arrived late
        late_crm_updates(data)[0]["customer_id"],
        # a customer with no orders at all
        _column(con, "SELECT min(customer_id) FROM silver_dim_customer WHERE customer_id NOT IN "
                     "(SELECT customer_id FROM silver_fact_orders)")[0],
    ]  # fmt: skip
    return [customer for customer in dict.fromkeys(picks) if customer not in crm_dirty]


def test_hand_checked_customers_match_a_plain_python_recomputation(
    data: GeneratedData, through: date, gold: ExpectedGold, con: duckdb.DuckDBPyConnection
) -> None:
    """A few customers' gold rows, recomputed field by field in plain Python."""
    customers = _hand_picked(data, through, con)
    assert len(customers) >= 6
    crm_dirty = {e.key for e in data.manifest if e.source == "crm_accounts"}
    others = sorted({c["customer_id"] for c in data.customers} - crm_dirty - set(customers))
    customers += random.Random(3).sample(others, 20)  # and a few ordinary ones
    for customer_id in customers:
        expected = python_customer_row(data, through, customer_id, SALT)
        actual = _row_of(gold.fact_customer_360, expected["customer_id"])
        for column in FACT_CUSTOMER_360_COLUMNS:
            assert _same(actual[column], expected[column]), (customer_id, column)


def test_every_rejecting_dirt_key_is_excluded_and_the_rest_behaves(
    data: GeneratedData, through: date, con: duckdb.DuckDBPyConnection
) -> None:
    """Manifest keys of rejecting kinds are gone; kept kinds end up as the doc says.

    Rejecting kinds (fresh keys, so the key is the dirty record's own): wrong_type,
    out_of_set_value, orphan_customer, negative_amount, malformed_session_id. null_key leaves no
    NULL key. duplicate_record and duplicate_key copy a clean record's key, so the key stays,
    once, at its latest version. unknown_column is split off at bronze: the row goes on.
    """
    order_ids = set(_column(con, "SELECT order_id FROM silver_fact_orders"))
    event_ids = set(_column(con, "SELECT event_id FROM silver_fact_events"))
    stages = dict(
        con.execute("SELECT customer_id, lifecycle_stage FROM silver_dim_customer").fetchall()
    )
    silver_keys = {
        "snowflake_orders": order_ids, "kafka_order_events": order_ids,
        "behavior_events": event_ids, "crm_accounts": set(stages),
    }  # fmt: skip
    rejecting = {
        DirtKind.WRONG_TYPE, DirtKind.OUT_OF_SET_VALUE, DirtKind.ORPHAN_CUSTOMER,
        DirtKind.NEGATIVE_AMOUNT, DirtKind.MALFORMED_SESSION_ID,
    }  # fmt: skip
    seen = set()
    for entry in (e for e in data.manifest if e.day <= through):
        keys = silver_keys[entry.source]
        seen.add((entry.source, entry.kind))
        if entry.kind is DirtKind.NULL_KEY:
            assert entry.key is None
        elif entry.source == "crm_accounts" and entry.kind is DirtKind.OUT_OF_SET_VALUE:
            # the customer keeps an older valid state, or (stand-in shadowing) is absent
            assert stages.get(entry.key, "subscriber") in vocab.LIFECYCLE_STAGES
        elif entry.kind in rejecting:
            assert entry.key not in keys, entry
        else:  # duplicate_record, duplicate_key, unknown_column: the key is kept
            owners = {
                r["customer_id"] for r in data.records(entry.source)
                if r[KEY_COLUMNS[entry.source]] == entry.key
            }  # fmt: skip
            # ... unless its customer vanished from the CRM (see the stand-in test below)
            assert entry.key in keys or not owners & set(stages), entry
    assert len(seen) == 4 + 8 + 7 + 6  # every (source, kind) the generator injects was checked
    for table, key in (("silver_fact_orders", "order_id"), ("silver_fact_events", "event_id"),
                       ("silver_dim_customer", "customer_id")):  # fmt: skip
        nulls, dupes = _one(
            con,
            f"SELECT count(*) FILTER (WHERE {key} IS NULL), count(*) - count(DISTINCT {key}) "
            f"FROM {table}",
        )
        assert (nulls, dupes) == (0, 0), table
    for table in ("silver_fact_orders", "silver_fact_events"):
        orphans = _one(
            con,
            f"SELECT count(*) FROM {table} WHERE customer_id NOT IN "
            "(SELECT customer_id FROM silver_dim_customer)",
        )
        assert orphans == 0, table
    # duplicate_key: the later same-day version wins unless a later day superseded it.
    for entry in data.manifest:
        if entry.kind is DirtKind.DUPLICATE_KEY and entry.key in order_ids:
            versions = [
                o for o in orders_snapshot(data, through)
                if o["order_id"] == entry.key and _valid_order(o, "order_amount")
            ]  # fmt: skip
            newest = max(versions, key=lambda o: o["updated_at"])
            status, updated_at = _one(
                con,
                "SELECT status, updated_at FROM silver_fact_orders WHERE order_id = ?",
                [entry.key],
            )
            assert (status, updated_at) == (newest["status"], _naive(newest["updated_at"]))


def test_the_last_snapshot_holds_every_orders_latest_snowflake_version(
    data: GeneratedData,
) -> None:
    """Orders only move forward: across all daily snapshots through day D, each order's latest
    version (max updated_at) is the one the snapshot of D holds, and no order disappears, so
    the oracle's silver orders are the same from the last snapshot or from all of them."""
    start = data.config.start_date
    for offset in range(data.config.days):
        day = start + timedelta(days=offset)
        union: dict[Any, list[dict[str, Any]]] = {}
        for earlier in range(offset + 1):
            for row in orders_snapshot(data, start + timedelta(days=earlier)):
                union.setdefault(row["order_id"], []).append(row)
        last: dict[Any, list[dict[str, Any]]] = {}
        for row in orders_snapshot(data, day):
            last.setdefault(row["order_id"], []).append(row)
        assert set(union) == set(last)
        for order_id, rows in union.items():
            newest = max(row["updated_at"] for row in rows)
            in_union = {tuple(r.items()) for r in rows if r["updated_at"] == newest}
            in_last = {tuple(r.items()) for r in last[order_id] if r["updated_at"] == newest}
            assert max(r["updated_at"] for r in last[order_id]) == newest, order_id
            assert in_union == in_last, order_id
        from_last = oracle_connection(data, through=day, salt=SALT)
        from_all = oracle_connection(data, through=day, salt=SALT, snowflake="all_snapshots")
        try:
            query = "SELECT * FROM silver_fact_orders ORDER BY order_id"
            assert from_last.execute(query).fetchall() == from_all.execute(query).fetchall()
        finally:
            from_last.close()
            from_all.close()


EDGE_CASES: list[tuple[str, str]] = [
    ("2.01", "2"),  # 1.005: HALF_UP gives 1.01; DuckDB's DOUBLE division gives 1.00
    ("0.01", "2"),  # 0.005 -> 0.01
    ("0.03", "2"),  # 0.015 -> 0.02
    ("1.15", "1"),
    ("-2.01", "2"),  # HALF_UP rounds away from zero: -1.01
    ("100.00", "0.00000001"),
    ("12345678.91", "151.51234567"),
    ("99999999999.99", "0.12345678"),
    ("0.00", "0.92"),
    ("123.45", "1.00000000"),
    ("1.00", "3"),
    ("2.00", "3"),
]


def test_usd_conversion_is_exactly_sparks_decimal_arithmetic(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """``spark_usd`` equals Spark's round(decimal(18,2) / decimal(18,8), 2) on every order, on
    hand-made ties and on random pairs; DuckDB's own division would not (it goes via DOUBLE)."""
    for amount, rate, usd in con.execute(
        "SELECT order_amount, usd_rate, amount_usd FROM orders_usd"
    ).fetchall():
        assert usd == spark_usd(amount, rate), (amount, rate)
    rng = random.Random(20261101)
    pairs = EDGE_CASES + [
        (
            str(Decimal(rng.randrange(0, 10**9)).scaleb(-2)),
            str(Decimal(rng.randrange(10**6, 2 * 10**10)).scaleb(-8)),
        )
        for _ in range(3_000)
    ]
    rows = con.execute(
        "SELECT a, r, spark_usd(CAST(a AS DECIMAL(18, 2)), CAST(r AS DECIMAL(18, 8))), "
        "round(CAST(a AS DECIMAL(18, 2)) / CAST(r AS DECIMAL(18, 8)), 2) "
        "FROM (SELECT unnest(?) AS a, unnest(?) AS r)",
        [[a for a, _ in pairs], [r for _, r in pairs]],
    ).fetchall()
    assert len(rows) == len(pairs)
    for amount, rate, exact, _naive_double in rows:
        expected = spark_usd(Decimal(amount), Decimal(rate))
        assert exact == expected, (amount, rate)
        assert exact.as_tuple().exponent == -2
    naive = {(a, r): double for a, r, _, double in rows}
    assert naive[("2.01", "2")] == 1.0  # why the oracle does not use DuckDB's division
    assert spark_usd(Decimal("2.01"), Decimal("2")) == Decimal("1.01")
    assert spark_usd(Decimal("-2.01"), Decimal("2")) == Decimal("-1.01")


def test_sparks_intermediate_rounding_only_matters_for_rates_of_10000_and_more(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Spark rounds the quotient to 14 places before rounding to cents. With r = R / 1e8, a
    quotient short of a half cent is short by at least 1 / (2R) cents, which survives 12 more
    places unless R >= 1e12, i.e. r >= 10,000. Every generated rate is far below (JPY ~155), so
    on this data Spark's chain and one exact half-up rounding agree; above, they can differ."""
    rng = random.Random(7)
    for _ in range(5_000):
        amount = Decimal(rng.randrange(0, 10**10)).scaleb(-2)
        rate = Decimal(rng.randrange(1, 10**12)).scaleb(-8)  # up to 9,999.99999999
        assert spark_usd(amount, rate) == exact_usd(amount, rate), (amount, rate)
    big = 1_234_567_890_123  # r = 12,345.67890123
    cents = (big - 1) // 2 * pow(10**8, -1, big) % big  # quotient = n + 1/2 - 1/(2 big) cents
    amount, rate = Decimal(cents).scaleb(-2), Decimal(big).scaleb(-8)
    assert spark_usd(amount, rate) == exact_usd(amount, rate) + Decimal("0.01")
    in_sql = _one(
        con,
        "SELECT spark_usd(CAST(? AS DECIMAL(18, 2)), CAST(? AS DECIMAL(18, 8)))",
        [str(amount), str(rate)],
    )
    assert in_sql == spark_usd(amount, rate)


def test_orders_daily_matches_a_plain_python_recomputation(
    data: GeneratedData, through: date, gold: ExpectedGold, con: duckdb.DuckDBPyConnection
) -> None:
    """orders_daily, every row, from the records in plain Python (customers: the oracle's
    dimension, which the CRM tests check on their own)."""
    customers = set(_column(con, "SELECT customer_id FROM silver_dim_customer"))
    rates = _rates(data, through)
    expected: dict[tuple[date, str], list[Any]] = {}
    for order in python_orders(data, through, customers):
        day, currency = order["order_ts"].date(), order["currency"]
        row = expected.setdefault((day, currency), [0, Decimal("0.00"), Decimal("0.00")])
        row[0] += 1
        if order["status"] not in ("cancelled", "returned"):
            row[1] += order["order_amount"]
            row[2] += spark_usd(order["order_amount"], _usd_rate(rates, day, currency))
    actual = {
        (r["order_date"], r["currency"]): [r["orders"], r["revenue"], r["revenue_usd"]]
        for r in gold.orders_daily.to_dict("records")
    }
    assert actual == expected


def test_the_rate_falls_back_to_the_latest_earlier_day(data: GeneratedData, through: date) -> None:
    """Without rates for a day, that day's orders use the previous day's rate."""
    gap = data.config.start_date + timedelta(days=1)
    holey = dataclasses.replace(data, fx_rates=[r for r in data.fx_rates if r["date"] != gap])
    connection = oracle_connection(holey, through=through, salt=SALT)
    try:
        rows = connection.execute(
            "SELECT currency, usd_rate FROM orders_usd WHERE order_date = ?", [gap]
        ).fetchall()
    finally:
        connection.close()
    rates = _rates(data, through)
    assert rows
    for currency, rate in rows:
        assert rate == _usd_rate(rates, gap - timedelta(days=1), currency)


def test_totals_agree_between_the_two_gold_tables(
    gold: ExpectedGold, con: duckdb.DuckDBPyConnection
) -> None:
    """Σ revenue_usd (orders_daily) = Σ lifetime_value_usd (customers), Σ orders = Σ
    order_count = silver orders: both tables aggregate the same silver orders with the same
    per-order USD amount, and the orphan rule puts every order's customer in the dimension."""
    facts, daily = gold.fact_customer_360, gold.orders_daily
    assert sum(daily["revenue_usd"], Decimal(0)) == sum(facts["lifetime_value_usd"], Decimal(0))
    orders = _one(con, "SELECT count(*) FROM silver_fact_orders")
    assert daily["orders"].sum() == facts["order_count"].sum() == orders
    usd = daily[daily["currency"] == "USD"]
    assert (usd["revenue"] == usd["revenue_usd"]).all()
    assert _one(con, "SELECT count(*) FROM orders_usd WHERE amount_usd IS NULL") == 0
    incomplete = "SELECT count(*) FROM silver_fact_orders WHERE status IS NULL OR order_ts IS NULL"
    assert _one(con, incomplete) == 0


def test_every_day_through_the_window_is_consistent(data: GeneratedData) -> None:
    """Through each loaded day: nothing later than that day, and the totals agree."""
    for offset in range(data.config.days):
        day = data.config.start_date + timedelta(days=offset)
        gold = expected_gold(data, through=day, salt=SALT)
        facts, daily = gold.fact_customer_360, gold.orders_daily
        assert max(daily["order_date"]) == day
        end = pd.Timestamp(day + timedelta(days=1))
        assert facts["last_order_ts"].max() < end
        assert facts["last_seen_ts"].max() < end
        assert sum(daily["revenue_usd"], Decimal(0)) == sum(facts["lifetime_value_usd"], Decimal(0))
        assert daily["orders"].sum() == facts["order_count"].sum()


def test_dim_customer_is_latest_by_last_modified_date_and_late_updates_wait(
    data: GeneratedData,
) -> None:
    """With every CRM version (``all_versions``), dim_customer on each day is the valid version
    with the newest last_modified_date among those available, and on the last day it is the
    generator's truth: a late update counts from the day it arrives, and only if newer."""
    start = data.config.start_date
    columns = ("customer_id", "name", "email", "phone", "country", "lifecycle_stage")
    late_days = {v["available_on"] for v in late_crm_updates(data)}
    assert late_days - {start}
    for offset in range(data.config.days):
        day = start + timedelta(days=offset)
        expected: dict[str, dict[str, Any]] = {}
        for version in data.crm_accounts:
            if (
                version["customer_id"] is None
                or version["available_on"] > day
                or version["lifecycle_stage"] not in vocab.LIFECYCLE_STAGES
            ):
                continue
            held = expected.get(version["customer_id"])
            if held is None or version["last_modified_date"] > held["last_modified_date"]:
                expected[version["customer_id"]] = version
        connection = oracle_connection(data, through=day, salt=SALT, crm="all_versions")
        try:
            rows = connection.execute(
                f"SELECT {', '.join(columns)} FROM silver_dim_customer"
            ).fetchall()
        finally:
            connection.close()
        assert set(rows) == {tuple(v[c] for c in columns) for v in expected.values()}
    truth = {tuple(c[col] for col in columns) for c in data.customers}
    assert set(rows) == truth


def test_the_crm_stand_in_loses_versions_a_same_day_dirty_copy_overwrote(
    data: GeneratedData, through: date
) -> None:
    """The CRM stand-in upserts by customer_id, so an out-of-set copy loaded after its clean
    twin replaces it and only the copy reaches raw. dim_customer then differs from the
    every-version view exactly for such customers, some of whom vanish (their orders and events
    become orphans)."""
    shadowed = {
        e.key for e in data.manifest
        if e.source == "crm_accounts" and e.kind is DirtKind.OUT_OF_SET_VALUE
    }  # fmt: skip
    served = served_records(data, through=through)["src_crm_accounts"]
    served_pairs = [(r["customer_id"], r["last_modified_date"]) for r in served]
    assert len(served_pairs) == len(set(served_pairs))  # the stand-in holds one row per id
    stand_in = oracle_connection(data, through=through, salt=SALT)
    every = oracle_connection(data, through=through, salt=SALT, crm="all_versions")
    try:
        query = "SELECT * FROM silver_dim_customer"
        differing = {row[0] for row in set(stand_in.execute(query).fetchall())
                     ^ set(every.execute(query).fetchall())}  # fmt: skip
        vanished = set(_column(every, "SELECT customer_id FROM silver_dim_customer")) - set(
            _column(stand_in, "SELECT customer_id FROM silver_dim_customer")
        )
        orphaned = _column(
            every,
            "SELECT order_id FROM silver_fact_orders WHERE customer_id IN "
            f"({', '.join(repr(c) for c in sorted(vanished)) or 'NULL'})",
        )
        kept = set(_column(stand_in, "SELECT order_id FROM silver_fact_orders"))
    finally:
        stand_in.close()
        every.close()
    assert differing <= shadowed
    assert vanished  # seed 11 has such customers: the case is exercised
    assert orphaned
    assert not set(orphaned) & kept


def test_through_before_the_window_is_refused(data: GeneratedData) -> None:
    """A day before the generated window has no loads."""
    with pytest.raises(ValueError, match="through=2026-10-31"):
        expected_gold(data, through=data.config.start_date - timedelta(days=1), salt=SALT)
