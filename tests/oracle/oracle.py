"""Expected gold tables, computed from the generator's records with DuckDB SQL alone.

The oracle shares no code with the pipeline (nothing from ``medallion.lakehouse.transforms``,
``medallion.lakehouse.quality``, ``medallion.lakehouse.contracts`` or
``medallion.lakehouse.pipelines``): it takes the records of ``medallion.platform.generate`` as each
source serves them through the last loaded day ``through``, registers them in an in-memory DuckDB
database and derives silver and gold in SQL from the rules of ``docs/build_analytics.md``:

- sources (``src_*``): Snowflake = the snapshot of ``through`` (``orders_snapshot``), Kafka = every
  order event with ``event_ts`` before the end of ``through``, behavior = every event before the
  end of ``through``, FX = every rate dated ``<= through``, CRM = what the CRM stand-in serves:
  it upserts each day's versions by ``customer_id`` in generator order, so of a day's versions
  of one customer only the last one ever reaches raw (``crm="all_versions"`` instead takes every
  version with ``available_on <= through``). Amounts and rates travel as raw text, as bronze's
  ``MAP<STRING,STRING>`` parse keeps them (``"18,76"`` stays text and fails the decimal rule).
- silver (``valid_*``, ``silver_*``): exact copies collapse, rows failing any rule are dropped
  before latest-wins, latest version per key by its sequence wins, Snowflake and Kafka versions
  unify into one row per order.
- gold (``gold_*``): the aggregations, with USD conversion done in exact integer arithmetic
  that reproduces Spark's ``round(decimal(18,2) / decimal(18,8), 2)`` (DuckDB's own decimal
  division returns DOUBLE: ``round(2.01 / 2, 2)`` would be 1.0 there, 1.01 in Spark).

``expected_gold`` returns the two gold tables as pandas frames typed as Spark's ``toPandas``
gives them (strings/decimals/dates as objects, counts int64, timestamps naive UTC
``datetime64[ns]``), sorted by their keys. ``oracle_connection`` exposes every intermediate table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

import duckdb
import pandas as pd
import pyarrow as pa

from medallion.platform.generate import GeneratedData, crm_accounts_on, orders_snapshot, source_row
from medallion.platform.generate.model import Record

CrmView = Literal["stand_in", "all_versions"]
SnowflakeView = Literal["last_snapshot", "all_snapshots"]

# The allowed value sets, written out here rather than imported from the generator's vocab (a
# test checks they agree), so that a vocabulary change cannot silently change the oracle.
ORDER_STATUSES: tuple[str, ...] = ("placed", "shipped", "delivered", "cancelled", "returned")
CURRENCIES: tuple[str, ...] = (
    "USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "INR", "BRL", "MXN",
)  # fmt: skip
EVENT_TYPES: tuple[str, ...] = ("page_view", "add_to_cart", "checkout", "purchase", "search")
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
LIFECYCLE_STAGES: tuple[str, ...] = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
    "customer", "evangelist",
)  # fmt: skip
KAFKA_OPS: tuple[str, ...] = ("c", "u", "d")
SESSION_ID_PATTERN = r"^sess_[0-9a-f]{16}$"
NOT_REVENUE: tuple[str, ...] = ("cancelled", "returned")

FACT_CUSTOMER_360_COLUMNS: tuple[str, ...] = (
    "customer_id", "name_masked", "email_masked", "phone_masked", "country", "lifecycle_stage",
    "order_count", "first_order_ts", "last_order_ts", "lifetime_value_usd", "event_count",
    "session_count", "last_seen_ts",
)  # fmt: skip
ORDERS_DAILY_COLUMNS: tuple[str, ...] = (
    "order_date", "currency", "orders", "revenue", "revenue_usd",
)  # fmt: skip
_COUNT_COLUMNS = frozenset({"order_count", "event_count", "session_count", "orders"})
_TIMESTAMP_COLUMNS = frozenset({"first_order_ts", "last_order_ts", "last_seen_ts"})

_TEXT = pa.string()
_TS = pa.timestamp("us")
# Source tables as the systems serve them; amount and rate as raw text (bronze casts them).
SOURCE_SCHEMAS: dict[str, pa.Schema] = {
    "src_snowflake_orders": pa.schema(
        [("order_id", _TEXT), ("customer_id", _TEXT), ("order_ts", _TS), ("status", _TEXT),
         ("currency", _TEXT), ("order_amount", _TEXT), ("updated_at", _TS)]
    ),
    "src_kafka_orders": pa.schema(
        [("order_id", _TEXT), ("customer_id", _TEXT), ("amount", _TEXT), ("currency", _TEXT),
         ("event_ts", _TS), ("op", _TEXT)]
    ),
    "src_behavior": pa.schema(
        [("event_id", _TEXT), ("session_id", _TEXT), ("customer_id", _TEXT),
         ("event_type", _TEXT), ("event_ts", _TS), ("page", _TEXT), ("device", _TEXT),
         ("referrer", _TEXT), ("app_version", _TEXT)]
    ),
    "src_crm_accounts": pa.schema(
        [("customer_id", _TEXT), ("name", _TEXT), ("email", _TEXT), ("phone", _TEXT),
         ("country", _TEXT), ("lifecycle_stage", _TEXT), ("last_modified_date", _TS)]
    ),
    "src_fx_rates": pa.schema(
        [("date", pa.date32()), ("base", _TEXT), ("currency", _TEXT), ("rate", _TEXT)]
    ),
}  # fmt: skip


@dataclass(frozen=True)
class ExpectedGold:
    """What ``gold.fact_customer_360`` and ``gold.orders_daily`` must hold, row for row."""

    fact_customer_360: pd.DataFrame
    orders_daily: pd.DataFrame


def _sql_set(values: Iterable[str]) -> str:
    """A SQL list literal of constant strings."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def _midnight(day: date) -> datetime:
    """00:00 UTC of ``day``."""
    return datetime.combine(day, time(), UTC)


def _days(data: GeneratedData, through: date) -> list[date]:
    """Every loaded day, from the first day of the window through ``through``."""
    start = data.config.start_date
    return [start + timedelta(days=n) for n in range((through - start).days + 1)]


def _crm_served(data: GeneratedData, through: date, crm: CrmView) -> list[Record]:
    """The CRM versions that reach raw through ``through``.

    ``stand_in``: each day the stand-in upserts that day's versions by customer_id in generator
    order (null keys skipped), so only the last one of a customer per day can be extracted; the
    3-day lookback of the extractor covers every late update (at most 3 days late), and records
    re-read in the lookback are copies of ones already served. ``all_versions``: every version
    with ``available_on <= through``.
    """
    if crm == "all_versions":
        return [
            source_row(version, "crm_accounts")
            for version in data.crm_accounts
            if version["available_on"] <= through
        ]
    served: list[Record] = []
    for day in _days(data, through):
        held: dict[str, Record] = {}
        for version in crm_accounts_on(data, day):
            if version["customer_id"] is not None:
                held[version["customer_id"]] = version
        served.extend(held.values())
    return served


def served_records(
    data: GeneratedData,
    *,
    through: date,
    crm: CrmView = "stand_in",
    snowflake: SnowflakeView = "last_snapshot",
) -> dict[str, list[Record]]:
    """Each source's records as served through ``through``, keyed by the ``src_*`` table name.

    ``snowflake="all_snapshots"`` unions every day's snapshot instead of taking the last one (the
    pipeline's view across days; a test checks both give the same silver orders).
    """
    if through < data.config.start_date:
        raise ValueError(
            f"through={through.isoformat()}: expected a day on or after the first generated day "
            f"{data.config.start_date.isoformat()}"
        )
    end = _midnight(through + timedelta(days=1))
    if snowflake == "last_snapshot":
        orders = orders_snapshot(data, through)
    else:
        orders = [row for day in _days(data, through) for row in orders_snapshot(data, day)]
    return {
        "src_snowflake_orders": orders,
        "src_kafka_orders": [e for e in data.kafka_order_events if e["event_ts"] < end],
        "src_behavior": [
            source_row(e, "behavior_events") for e in data.behavior_events if e["event_ts"] < end
        ],
        "src_crm_accounts": _crm_served(data, through, crm),
        "src_fx_rates": [rate for rate in data.fx_rates if rate["date"] <= through],
    }


def raw_text(value: Any) -> str | None:
    """A value as raw text: strings verbatim (dirt such as ``"18,76"`` too), numbers in plain
    decimal notation (as the Snowflake stand-in stores them and JSON writes them)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format(Decimal(repr(value)), "f")
    return json.dumps(value, default=str)


def _naive_utc(value: Any) -> datetime | None:
    """An aware datetime as naive UTC (DuckDB TIMESTAMP); naive values are taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, found {type(value).__name__} {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _arrow_table(records: Sequence[Record], schema: pa.Schema) -> pa.Table:
    """The records as an Arrow table of exactly ``schema`` (missing fields are NULL)."""
    columns: dict[str, list[Any]] = {}
    for arrow_field in schema:
        convert: Callable[[Any], Any]
        if arrow_field.type == _TS:
            convert = _naive_utc
        elif arrow_field.type == _TEXT:
            convert = raw_text
        else:
            convert = lambda value: value  # noqa: E731 - identity for dates
        columns[arrow_field.name] = [convert(record.get(arrow_field.name)) for record in records]
    return pa.table(columns, schema=schema)


# Spark: decimal(18,2) / decimal(18,8) is decimal(38,14), rounded HALF_UP; round(_, 2) is HALF_UP
# again. With a = amount in cents and r = rate * 1e8 (integers), the quotient at scale 14 is
# a * 1e20 / r; both roundings are done on non-negative HUGEINTs as (2n + d) // (2d), the sign
# put back after (HALF_UP rounds away from zero). Exact for |amount| < 8.5e15. The 14-place
# step only changes a result when the rate is >= 10,000 units per USD (a test shows where);
# below that it equals one exact half-up rounding of amount / rate to cents.
_SPARK_USD_MACRO = """
CREATE OR REPLACE MACRO spark_usd(amount, rate) AS (
  CASE WHEN amount IS NULL OR rate IS NULL OR rate = 0 THEN NULL ELSE
    CAST(
      CAST(
        (CASE WHEN (amount < 0) <> (rate < 0) THEN -1 ELSE 1 END)
        * ((2 * ((2 * abs(CAST(CAST(amount AS DECIMAL(38, 2)) * 100 AS HUGEINT))
                  * CAST('100000000000000000000' AS HUGEINT)
                  + abs(CAST(CAST(rate AS DECIMAL(38, 8)) * 100000000 AS HUGEINT)))
                 // (2 * abs(CAST(CAST(rate AS DECIMAL(38, 8)) * 100000000 AS HUGEINT))))
            + CAST(1000000000000 AS HUGEINT))
           // CAST(2000000000000 AS HUGEINT))
      AS DECIMAL(38, 0)) * 0.01
    AS DECIMAL(18, 2))
  END
)
"""


def _silver_sql() -> list[str]:
    """The silver statements: rules, dedupe, latest-wins, order unification, FX."""
    statuses, currencies = _sql_set(ORDER_STATUSES), _sql_set(CURRENCIES)
    is_decimal = "({col} IS NULL OR TRY_CAST({col} AS DECIMAL(18, 2)) IS NOT NULL)"
    not_negative = "coalesce(TRY_CAST({col} AS DECIMAL(18, 2)) >= 0, false)"
    in_dim = "customer_id IN (SELECT customer_id FROM silver_dim_customer)"
    return [
        # dim_customer: customer_id_not_null, lifecycle_stage_in_set; latest last_modified_date.
        f"""
        CREATE TABLE valid_crm_accounts AS
        SELECT * FROM (SELECT DISTINCT * FROM src_crm_accounts)
        WHERE customer_id IS NOT NULL
          AND coalesce(lifecycle_stage IN ({_sql_set(LIFECYCLE_STAGES)}), false)
        """,
        """
        CREATE TABLE silver_dim_customer AS
        SELECT * EXCLUDE (rn) FROM (
          SELECT *, row_number() OVER (
            PARTITION BY customer_id
            ORDER BY last_modified_date DESC NULLS LAST, name, email, phone, country,
                     lifecycle_stage
          ) AS rn
          FROM valid_crm_accounts
        ) WHERE rn = 1
        """,
        # fact_orders, Snowflake side: order_id_not_null, order_amount_is_decimal, status_in_set,
        # currency_in_set, customer_in_dim_customer, order_amount_not_negative.
        f"""
        CREATE TABLE valid_snowflake_orders AS
        SELECT order_id, customer_id, order_ts, status, currency,
               TRY_CAST(order_amount AS DECIMAL(18, 2)) AS order_amount, updated_at
        FROM (SELECT DISTINCT * FROM src_snowflake_orders)
        WHERE order_id IS NOT NULL
          AND {is_decimal.format(col="order_amount")}
          AND coalesce(status IN ({statuses}), false)
          AND coalesce(currency IN ({currencies}), false)
          AND {in_dim}
          AND {not_negative.format(col="order_amount")}
        """,
        # Kafka side: the same rules; an op outside c/u/d has no status and fails status_in_set.
        f"""
        CREATE TABLE valid_kafka_orders AS
        SELECT order_id, customer_id, TRY_CAST(amount AS DECIMAL(18, 2)) AS order_amount,
               currency, event_ts, op
        FROM (SELECT DISTINCT * FROM src_kafka_orders)
        WHERE order_id IS NOT NULL
          AND {is_decimal.format(col="amount")}
          AND coalesce(op IN ({_sql_set(KAFKA_OPS)}), false)
          AND coalesce(currency IN ({currencies}), false)
          AND {in_dim}
          AND {not_negative.format(col="amount")}
        """,
        # Every valid version of an order in sequence order; a tie goes to Snowflake (rank 1).
        # A CDC event has no order_ts (a create's event_ts is the order's creation) and a 'u'
        # has no status: both keep the current value in the fold below.
        """
        CREATE TABLE order_versions AS
        SELECT order_id, customer_id, order_ts, status, currency, order_amount,
               updated_at AS seq, 1 AS source_rank, status AS tiebreak
        FROM valid_snowflake_orders
        UNION ALL
        SELECT order_id, customer_id,
               CASE WHEN op = 'c' THEN event_ts END AS order_ts,
               CASE op WHEN 'c' THEN 'placed' WHEN 'd' THEN 'cancelled' END AS status,
               currency, order_amount, event_ts AS seq, 0 AS source_rank,
               CASE op WHEN 'c' THEN '0' WHEN 'u' THEN '1' ELSE '2' END AS tiebreak
        FROM valid_kafka_orders
        """,
        """
        CREATE TABLE silver_fact_orders AS
        SELECT order_id, customer_id, order_ts, status, currency, order_amount, updated_at,
               CASE source_rank WHEN 1 THEN 'snowflake' ELSE 'kafka' END AS won_by
        FROM (
          SELECT order_id, customer_id, currency, order_amount, seq AS updated_at, source_rank,
                 last_value(status IGNORE NULLS) OVER running AS status,
                 last_value(order_ts IGNORE NULLS) OVER running AS order_ts,
                 row_number() OVER latest_first AS rn
          FROM order_versions
          WINDOW running AS (
                   PARTITION BY order_id ORDER BY seq, source_rank, tiebreak
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
                 latest_first AS (
                   PARTITION BY order_id ORDER BY seq DESC, source_rank DESC, tiebreak DESC)
        ) WHERE rn = 1
        """,
        # fact_events: event_id_not_null, event_type_in_set, device_in_set,
        # customer_in_dim_customer, session_id_format; immutable, one row per event_id.
        f"""
        CREATE TABLE valid_behavior AS
        SELECT * FROM (SELECT DISTINCT * FROM src_behavior)
        WHERE event_id IS NOT NULL
          AND coalesce(event_type IN ({_sql_set(EVENT_TYPES)}), false)
          AND coalesce(device IN ({_sql_set(DEVICES)}), false)
          AND {in_dim}
          AND coalesce(regexp_matches(session_id, '{SESSION_ID_PATTERN}'), false)
        """,
        """
        CREATE TABLE silver_fact_events AS
        SELECT * EXCLUDE (rn) FROM (
          SELECT *, row_number() OVER (
            PARTITION BY event_id ORDER BY event_ts DESC, session_id, customer_id) AS rn
          FROM valid_behavior
        ) WHERE rn = 1
        """,
        # fx_rates: one rate per (rate_date, currency).
        """
        CREATE TABLE silver_fx_rates AS
        SELECT DISTINCT date AS rate_date, currency, CAST(rate AS DECIMAL(18, 8)) AS rate
        FROM src_fx_rates
        WHERE date IS NOT NULL AND currency IS NOT NULL
          AND TRY_CAST(rate AS DECIMAL(18, 8)) IS NOT NULL
        """,
    ]


def _gold_sql() -> list[str]:
    """The gold statements: per-order USD amounts, then the two gold tables."""
    not_revenue = _sql_set(NOT_REVENUE)
    return [
        # The USD rate of the order's UTC date, else the latest earlier one; USD is 1.
        f"""
        CREATE TABLE orders_usd AS
        SELECT o.*, CAST(o.order_ts AS DATE) AS order_date,
               CASE WHEN o.currency = 'USD' THEN CAST(1 AS DECIMAL(18, 8)) ELSE fx.rate END
                 AS usd_rate,
               spark_usd(o.order_amount, usd_rate) AS amount_usd,
               (o.status IS NULL OR o.status NOT IN ({not_revenue})) AS is_revenue
        FROM silver_fact_orders o
        ASOF LEFT JOIN silver_fx_rates fx
          ON o.currency = fx.currency AND CAST(o.order_ts AS DATE) >= fx.rate_date
        """,
        """
        CREATE TABLE gold_fact_customer_360 AS
        WITH o AS (
          SELECT customer_id, count(*) AS order_count, min(order_ts) AS first_order_ts,
                 max(order_ts) AS last_order_ts,
                 sum(amount_usd) FILTER (WHERE is_revenue) AS lifetime_value_usd
          FROM orders_usd GROUP BY customer_id
        ), e AS (
          SELECT customer_id, count(*) AS event_count,
                 count(DISTINCT session_id) AS session_count, max(event_ts) AS last_seen_ts
          FROM silver_fact_events GROUP BY customer_id
        )
        SELECT sha256((SELECT salt FROM oracle_params) || ':' || c.customer_id) AS customer_id,
               left(c.name, 1) || '***' AS name_masked,
               left(c.email, 1) || '***@' || string_split(c.email, '@')[-1] AS email_masked,
               '***' || right(regexp_replace(c.phone, '[^0-9]', '', 'g'), 2) AS phone_masked,
               c.country, c.lifecycle_stage,
               coalesce(o.order_count, 0) AS order_count,
               o.first_order_ts, o.last_order_ts,
               CAST(coalesce(o.lifetime_value_usd, 0) AS DECIMAL(18, 2)) AS lifetime_value_usd,
               coalesce(e.event_count, 0) AS event_count,
               coalesce(e.session_count, 0) AS session_count,
               e.last_seen_ts,
               c.customer_id AS source_customer_id
        FROM silver_dim_customer c
        LEFT JOIN o ON o.customer_id = c.customer_id
        LEFT JOIN e ON e.customer_id = c.customer_id
        """,
        """
        CREATE TABLE gold_orders_daily AS
        SELECT order_date, currency, count(*) AS orders,
               CAST(coalesce(sum(order_amount) FILTER (WHERE is_revenue), 0) AS DECIMAL(18, 2))
                 AS revenue,
               CAST(coalesce(sum(amount_usd) FILTER (WHERE is_revenue), 0) AS DECIMAL(18, 2))
                 AS revenue_usd
        FROM orders_usd GROUP BY order_date, currency
        """,
    ]


def oracle_connection(
    data: GeneratedData,
    *,
    through: date,
    salt: str,
    crm: CrmView = "stand_in",
    snowflake: SnowflakeView = "last_snapshot",
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding the sources, silver and gold of the oracle (caller closes).

    Tables: ``src_*`` (as served), ``valid_*`` (after rules and exact-copy dedupe),
    ``silver_dim_customer``, ``silver_fact_orders`` (+ ``won_by``), ``silver_fact_events``,
    ``silver_fx_rates``, ``orders_usd`` (per order: usd_rate, amount_usd, is_revenue),
    ``gold_fact_customer_360`` (+ ``source_customer_id``, the unhashed id), ``gold_orders_daily``;
    macro ``spark_usd(amount, rate)``.
    """
    served = served_records(data, through=through, crm=crm, snowflake=snowflake)
    con = duckdb.connect(":memory:")
    try:
        for name, schema in SOURCE_SCHEMAS.items():
            arrow = _arrow_table(served[name], schema)
            con.register("_arrow_source", arrow)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _arrow_source")
            con.unregister("_arrow_source")
        params = pa.table({"salt": [salt]}, schema=pa.schema([("salt", _TEXT)]))
        con.register("_arrow_params", params)
        con.execute("CREATE TABLE oracle_params AS SELECT * FROM _arrow_params")
        con.unregister("_arrow_params")
        con.execute(_SPARK_USD_MACRO)
        for statement in [*_silver_sql(), *_gold_sql()]:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def _frame(
    con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str], order_by: str
) -> pd.DataFrame:
    """A gold table as Spark's toPandas types it: Decimal/date/str objects, int64 counts,
    naive UTC datetime64[ns] timestamps."""
    rows = con.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order_by}").fetchall()
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    for column in columns:
        if column in _COUNT_COLUMNS:
            frame[column] = frame[column].astype("int64")
        elif column in _TIMESTAMP_COLUMNS:
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
        else:
            frame[column] = frame[column].astype(object)
    return frame


def expected_gold(
    data: GeneratedData, *, through: date, salt: str, crm: CrmView = "stand_in"
) -> ExpectedGold:
    """The gold tables the pipeline must produce after loading every day through ``through``.

    ``fact_customer_360`` is sorted by (hashed) customer_id, ``orders_daily`` by
    (order_date, currency).
    """
    con = oracle_connection(data, through=through, salt=salt, crm=crm)
    try:
        return ExpectedGold(
            fact_customer_360=_frame(
                con, "gold_fact_customer_360", FACT_CUSTOMER_360_COLUMNS, "customer_id"
            ),
            orders_daily=_frame(con, "gold_orders_daily", ORDERS_DAILY_COLUMNS, "1, 2"),
        )
    finally:
        con.close()
