"""Silver ``fact_events``: behavior events from ``bronze.customer_behavior``, one per event_id."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from medallion.transforms.silver.dedupe import kept_rows, mark_duplicates

KEYS: tuple[str, ...] = ("event_id",)
SEQUENCE_BY = "event_ts"
FACT_EVENTS_COLUMNS: tuple[str, ...] = (
    "event_id",
    "session_id",
    "customer_id",
    "event_type",
    "event_ts",
    "page",
    "device",
    "referrer",
    "app_version",
)
"""The business columns of ``silver.fact_events`` in table order; metadata columns follow."""


def latest_first() -> list[Column]:
    """The kept-row ordering: latest sequence first, then the latest landing, then a fixed order."""
    # Built on call: a Column needs a live session in classic PySpark, so none at import time.
    return [
        sf.col(SEQUENCE_BY).desc_nulls_last(),
        sf.col("_ingest_ts").desc_nulls_last(),
        sf.col("_source_file").desc_nulls_last(),
    ]


def mark_event_copies(valid: DataFrame) -> DataFrame:
    """Valid behavior rows with ``_drop_rule`` (see ``dedupe.mark_duplicates``).

    Grain: one row per valid row; key of the kept rows: event_id.
    """
    return mark_duplicates(valid, KEYS, latest_first())


def latest_events(valid: DataFrame) -> DataFrame:
    """One row per event in the batch (events are immutable: copies collapse to one).

    Grain and key: one row per event_id. Columns: those of ``valid``.
    """
    return kept_rows(mark_event_copies(valid))
