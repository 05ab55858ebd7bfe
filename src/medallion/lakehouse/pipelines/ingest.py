"""The ingest steps the ``ingest_daily_sources`` notebooks call: resolve a source, extract, land.

Each step takes the job's resolved ``Environment`` (``medallion.lakehouse.environment``): its
source's endpoint (a job parameter, or on the local target the running stand-in's, resolved at the
edge), credentials from its secret provider, and its storage root. It runs the source's extractor
for one load date and returns an ``IngestResult`` with the load's counts, positions and rows per
second. Endpoints, never credentials, appear in results and errors; an endpoint nobody
configured fails the step with the environment's message naming the job parameter. A source
that does not answer is retried by its client with exponential backoff from
``retry_wait_seconds`` (job parameter ``source_retry_wait_seconds``, 0.5 s by default) before the
step fails ``SourceUnavailable``; Kafka's waits are bounded by ``timeout_seconds`` instead.

Parameter forms:

- ``snowflake_url``: ``https://<account>.snowflakecomputing.com`` (the account is the first label
  of the host, or ``?account=``); the stand-in's is ``http://127.0.0.1:<port>?account=fakesnow``.
- ``redshift_url``: ``redshift://host:5439/db`` (``redshift_connector``) or
  ``postgresql://host:port/db`` (psycopg; the stand-in).
- ``crm_api_url``, ``fx_api_url``: base URLs of the HTTP APIs.
- ``kafka_bootstrap_servers``: ``host:port[,host:port]``.

The database URLs are parsed by their systems' clients (``medallion.lakehouse.clients``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from medallion.lakehouse.clients import redshift as redshift_client
from medallion.lakehouse.clients import snowflake as snowflake_client
from medallion.lakehouse.environment import Environment
from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.lineage import lineage_job
from medallion.lakehouse.lineage.steps import DatasetRef, StepLineage, raw_load_ref, system_ref
from medallion.lakehouse.pipelines.fx_rates import ingest_fx_rates
from medallion.lakehouse.raw.landing import LoadManifest
from medallion.lakehouse.sources import crm, kafka_orders, redshift, snowflake
from medallion.lakehouse.sources.redshift import WarehouseConnection
from medallion.lakehouse.state import redshift_mark_path, source_lock
from medallion.lakehouse.storage import StorageRoot

MAX_BACKFILL_DAYS = 366

# A source client's first wait between its attempts, doubled for each later one (with jitter);
# the job parameter ``source_retry_wait_seconds``.
RETRY_WAIT_SECONDS = 0.5


def _retry_wait(seconds: float) -> float:
    if not seconds >= 0:  # NaN included
        raise ConfigError(
            f"source_retry_wait_seconds={seconds}: expected a number of seconds, 0 or more"
        )
    return seconds


@dataclass(frozen=True)
class IngestResult:
    """One source's load for one date: where it landed, how many rows, how fast, positions."""

    source: str
    entity: str | None
    load_dt: date
    load_dir: str
    rows: int
    seconds: float
    positions: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        """Landed rows per wall-clock second of the extraction (0 for an empty load)."""
        return round(self.rows / self.seconds, 1) if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for task values and run summaries."""
        return {
            "source": self.source,
            "entity": self.entity,
            "load_dt": self.load_dt.isoformat(),
            "load_dir": self.load_dir,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_second": self.rows_per_second,
            "positions": dict(self.positions),
        }


def _result(manifest: LoadManifest, started: float) -> IngestResult:
    return IngestResult(
        source=manifest.source,
        entity=manifest.entity,
        load_dt=manifest.load_dt,
        load_dir=str(manifest.load_dir),
        rows=manifest.row_count,
        seconds=time.monotonic() - started,
        positions=dict(manifest.source_positions),
    )


def snowflake_settings(environment: Environment) -> snowflake_client.SnowflakeSettings:
    """Connection settings from the environment's ``snowflake_url`` and secret provider.

    ``https://<account>.snowflakecomputing.com[?database=…&warehouse=…&role=…&account=…]``
    (``medallion.lakehouse.clients.snowflake.parse_url``), as the secret scope's ``snowflake-user``.
    """
    settings = snowflake_client.parse_url(environment.endpoints.require("snowflake_url"))
    secrets = environment.secrets
    return settings.with_credentials(
        str(secrets.get("snowflake-user")), str(secrets.get("snowflake-password"))
    )


def ingest_lineage(storage_root: StorageRoot, load_date: date, source: str, entity: str | None,
                   read: DatasetRef) -> StepLineage:
    """An ingest step reads one dataset of a source system and writes one raw load."""
    raw = raw_load_ref(storage_root, source, entity, load_date)
    return StepLineage(
        job_name=f"ingest.{source}" + (f"_{entity}" if entity else ""),
        storage_root=storage_root,
        inputs=(read,),
        outputs=(raw,),
        rows_written=lambda result: {raw.name: result.rows},
    )


def source_ref(environment: Environment, system: str, endpoint: str, name: str) -> DatasetRef:
    """The dataset a step reads from the system at the environment's ``endpoint``."""
    return system_ref(system, environment.endpoints.lineage_url(endpoint), name)


@lineage_job(lambda environment, load_date, **_: ingest_lineage(
    environment.storage_root, load_date, "snowflake", "orders",
    source_ref(environment, "snowflake", "snowflake_url", "ORDERS")))
def ingest_snowflake_orders(
    environment: Environment, load_date: date, *, retry_wait_seconds: float = RETRY_WAIT_SECONDS
) -> IngestResult:
    """Full load of Snowflake ORDERS into ``raw/snowflake/orders/load_dt=<load_date>``."""
    settings = snowflake_settings(environment)
    storage_root = environment.storage_root
    started = time.monotonic()
    conn = snowflake_client.connect_to(
        settings, initial_wait_seconds=_retry_wait(retry_wait_seconds)
    )
    try:
        with source_lock(storage_root, snowflake.SOURCE):
            manifest = snowflake.extract_orders_to_raw(storage_root, conn, load_date)
    finally:
        conn.close()
    return _result(manifest, started)


def redshift_settings(environment: Environment) -> redshift_client.RedshiftSettings:
    """Connection settings from the environment's ``redshift_url`` and secret provider.

    ``redshift://host[:5439]/database`` or ``postgresql://host[:5432]/database``, as the secret
    scope's ``redshift-user`` (on the local target, the stand-in's own role when its URL is).
    """
    settings = redshift_client.parse_url(environment.endpoints.require("redshift_url"))
    secrets = environment.secrets
    return settings.with_credentials(
        str(secrets.get("redshift-user")), str(secrets.get("redshift-password"))
    )


def redshift_connection(
    environment: Environment, *, retry_wait_seconds: float = RETRY_WAIT_SECONDS
) -> WarehouseConnection:
    """A warehouse connection from the environment's ``redshift_url`` and secret provider."""
    return redshift.connect_warehouse(
        redshift_settings(environment), initial_wait_seconds=_retry_wait(retry_wait_seconds)
    )


@lineage_job(lambda environment, load_date, **_: ingest_lineage(
    environment.storage_root, load_date, "redshift", "behavior",
    source_ref(environment, "redshift", "redshift_url", "analytics.behavior")))
def ingest_redshift_behavior(
    environment: Environment, load_date: date, *, retry_wait_seconds: float = RETRY_WAIT_SECONDS
) -> IngestResult:
    """Behavior events after the high-water mark into ``raw/redshift/behavior/load_dt=``."""
    storage_root = environment.storage_root
    conn = redshift_connection(environment, retry_wait_seconds=retry_wait_seconds)
    started = time.monotonic()
    try:
        with source_lock(storage_root, redshift.SOURCE):
            manifest = redshift.extract_behavior_to_raw(
                storage_root, conn, load_date, redshift_mark_path(storage_root)
            )
    finally:
        conn.close()
    return _result(manifest, started)


@lineage_job(lambda environment, load_date, **_: ingest_lineage(
    environment.storage_root, load_date, "crm", "accounts",
    source_ref(environment, "crm-api", "crm_api_url", "accounts")))
def ingest_crm_accounts(
    environment: Environment,
    load_date: date,
    *,
    lookback_days: int = 3,
    retry_wait_seconds: float = RETRY_WAIT_SECONDS,
) -> IngestResult:
    """CRM accounts modified since the watermark (minus the lookback) into ``raw/crm/accounts``."""
    if lookback_days < 0:
        raise ConfigError(f"lookback_days={lookback_days}: expected 0 or more")
    wait = _retry_wait(retry_wait_seconds)
    storage_root = environment.storage_root
    url = environment.endpoints.require("crm_api_url").rstrip("/")
    token = environment.secrets.get("crm-token", fallback=lambda: None)
    started = time.monotonic()
    with source_lock(storage_root, crm.SOURCE):
        manifest = crm.extract_crm_accounts_to_raw(
            storage_root, url, load_date, token=token, lookback=timedelta(days=lookback_days),
            initial_wait_seconds=wait,
        )
    return _result(manifest, started)


@lineage_job(lambda environment, load_date, topic, **_: ingest_lineage(
    environment.storage_root, load_date, "kafka", "orders",
    source_ref(environment, "kafka", "kafka_bootstrap_servers", topic)))
def ingest_kafka_orders(
    environment: Environment,
    load_date: date,
    *,
    topic: str = kafka_orders.DEFAULT_TOPIC,
    timeout_seconds: float = kafka_orders.BROKER_TIMEOUT_SECONDS,
) -> IngestResult:
    """Order events from the day's start offsets to the topic's end into ``raw/kafka/orders``.

    The extractor holds the source's lock itself (``kafka_orders.lock``); ``timeout_seconds``
    bounds each wait for the broker.
    """
    bootstrap = environment.endpoints.require("kafka_bootstrap_servers")
    started = time.monotonic()
    manifest = kafka_orders.extract_kafka_orders_to_raw(
        environment.storage_root, bootstrap, load_date, topic=topic,
        timeout_seconds=timeout_seconds,
    )
    return _result(manifest, started)


@lineage_job(lambda environment, load_date, **_: ingest_lineage(
    environment.storage_root, load_date, "fx_rates", None,
    source_ref(environment, "fx-api", "fx_api_url", "rates")))
def ingest_fx(
    environment: Environment, load_date: date, *, retry_wait_seconds: float = RETRY_WAIT_SECONDS
) -> IngestResult:
    """The day's FX rates into ``raw/fx_rates/load_dt=<load_date>`` (upsert downstream)."""
    wait = _retry_wait(retry_wait_seconds)
    storage_root = environment.storage_root
    url = environment.endpoints.require("fx_api_url").rstrip("/")
    started = time.monotonic()
    with source_lock(storage_root, "fx_rates"):
        step = ingest_fx_rates(storage_root, load_date, url, initial_wait_seconds=wait)
    return IngestResult(
        source="fx_rates", entity=None, load_dt=load_date, load_dir=step.target,
        rows=step.rows_written, seconds=time.monotonic() - started,
        positions={"rate_date": load_date.isoformat()},
    )


def load_dates(run_date: str, backfill_from: str = "", backfill_to: str = "") -> list[str]:
    """The load dates a run covers: ``[run_date]``, or every day of the backfill range.

    ``backfill_from`` alone runs from that day to ``run_date``; both give an inclusive range.
    Dates are ISO ``YYYY-MM-DD``, returned oldest first (incremental sources must go in order).
    """
    def parse(name: str, value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r}: expected a date YYYY-MM-DD") from None

    end = parse("run_date", run_date)
    if not backfill_from:
        if backfill_to:
            raise ConfigError(f"backfill_to={backfill_to!r} needs backfill_from as well")
        return [end.isoformat()]
    start = parse("backfill_from", backfill_from)
    if backfill_to:
        end = parse("backfill_to", backfill_to)
    if start > end:
        raise ConfigError(
            f"backfill range {start.isoformat()} .. {end.isoformat()}: the start is after the end"
        )
    days = (end - start).days + 1
    if days > MAX_BACKFILL_DAYS:
        raise ConfigError(
            f"backfill range {start.isoformat()} .. {end.isoformat()} is {days} days; expected at "
            f"most {MAX_BACKFILL_DAYS} per run (split it into several runs)"
        )
    return [(start + timedelta(days=offset)).isoformat() for offset in range(days)]

