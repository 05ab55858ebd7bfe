"""Silver ``dim_customer``: the latest CRM state per customer from ``bronze.crm_accounts``."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from medallion.transforms.silver.dedupe import kept_rows, mark_duplicates

KEYS: tuple[str, ...] = ("customer_id",)
SEQUENCE_BY = "last_modified_date"
DIM_CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "name",
    "email",
    "phone",
    "country",
    "lifecycle_stage",
    "last_modified_date",
)
"""The business columns of ``silver.dim_customer`` in table order; metadata columns follow."""


def latest_first() -> list[Column]:
    """The kept-row ordering: latest sequence first, then the latest landing, then a fixed order."""
    # Built on call: a Column needs a live session in classic PySpark, so none at import time.
    return [
        sf.col(SEQUENCE_BY).desc_nulls_last(),
        # The same modification landed twice: the later landing wins, then a fixed order.
        sf.col("_ingest_ts").desc_nulls_last(),
        sf.col("_source_file").desc_nulls_last(),
    ]


def mark_customer_versions(valid: DataFrame) -> DataFrame:
    """Valid CRM rows with ``_drop_rule`` (see ``dedupe.mark_duplicates``).

    Grain: one row per valid row; key of the kept rows: customer_id. The kept row is the one with
    the latest ``last_modified_date`` (then the latest ``_ingest_ts``), so a late-arriving update
    replaces an earlier one only when it was modified later.
    """
    return mark_duplicates(valid, KEYS, latest_first())


def latest_customers(valid: DataFrame) -> DataFrame:
    """The latest CRM state per customer in the batch.

    Grain and key: one row per customer_id. Columns: those of ``valid`` (``DIM_CUSTOMER_COLUMNS``
    and the metadata columns).
    """
    return kept_rows(mark_customer_versions(valid))
