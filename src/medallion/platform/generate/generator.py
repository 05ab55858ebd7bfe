"""Generate every source's records and the dirt manifest from one GeneratorConfig."""

from __future__ import annotations

from medallion.platform.generate import entities
from medallion.platform.generate.config import DirtKind, GeneratorConfig
from medallion.platform.generate.dirt import (
    behavior_mutations,
    crm_mutations,
    inject,
    order_mutations,
)
from medallion.platform.generate.model import GeneratedData, Record

DUPLICATE_KEY_POOL_SECONDS = 86_000  # a later same-day version needs up to 300 s of room


def _seconds_of_day(record: Record) -> int:
    """Seconds since midnight of a version's updated_at."""
    moment = record["updated_at"]
    return int(moment.hour * 3_600 + moment.minute * 60 + moment.second)


def generate(config: GeneratorConfig) -> GeneratedData:
    """All five sources plus the CRM truth, with dirt injected and listed in the manifest."""
    customers, crm_clean = entities.build_customers(config)
    orders_clean, kafka_clean = entities.build_orders(config, customers)
    behavior_clean = entities.build_behavior(config, customers)
    start = config.start_date

    not_late = [
        version
        for version in crm_clean
        if not (
            version["available_on"] > start
            and version["last_modified_date"].date() < version["available_on"]
        )
    ]
    crm_dirty, crm_manifest = inject(
        config, "crm_accounts", crm_clean, config.n_customers, crm_mutations(),
        pools=dict.fromkeys(DirtKind, not_late),
    )  # fmt: skip
    later_pool = [v for v in orders_clean if _seconds_of_day(v) < DUPLICATE_KEY_POOL_SECONDS]
    orders_dirty, orders_manifest = inject(
        config, "snowflake_orders", orders_clean, config.n_orders,
        order_mutations(config, "snowflake_orders"), pools={DirtKind.DUPLICATE_KEY: later_pool},
    )  # fmt: skip
    kafka_dirty, kafka_manifest = inject(
        config, "kafka_order_events", kafka_clean, config.n_orders,
        order_mutations(config, "kafka_order_events"),
    )  # fmt: skip
    behavior_dirty, behavior_manifest = inject(
        config, "behavior_events", behavior_clean, config.n_events, behavior_mutations(config)
    )
    # Stable sorts on always-clean columns: dirty records land next to the record they copy.
    return GeneratedData(
        config=config,
        customers=customers,
        crm_accounts=sorted(
            crm_clean + crm_dirty, key=lambda r: (r["available_on"], r["last_modified_date"])
        ),
        snowflake_orders=sorted(
            orders_clean + orders_dirty, key=lambda r: (r["available_on"], r["updated_at"])
        ),
        kafka_order_events=sorted(kafka_clean + kafka_dirty, key=lambda r: r["event_ts"]),
        behavior_events=sorted(behavior_clean + behavior_dirty, key=lambda r: r["event_ts"]),
        fx_rates=entities.build_fx_rates(config),
        manifest=crm_manifest + orders_manifest + kafka_manifest + behavior_manifest,
    )
