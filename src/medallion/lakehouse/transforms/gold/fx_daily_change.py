"""Gold ``fx_daily_change``: each day's USD rate next to the previous available one.

Silver ``fx_rates`` is built by the generic silver step from ``config/dq/silver/fx_rates.yml``
(its rules quarantine a bad rate; the latest landing of a (rate_date, currency) wins). ``rate`` is
``DECIMAL(18,8)``, not DOUBLE: the source publishes decimal numbers (6 places) and decimals keep
them exact, so a re-landed identical rate compares equal in the silver MERGE and the change here
does not depend on partitioning.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as sf
from pyspark.sql.types import DecimalType

CHANGE_PCT_TYPE = DecimalType(18, 4)


def build_fx_daily_change(silver: DataFrame) -> DataFrame:
    """Gold ``fx_daily_change``: each day's rate next to the previous available one.

    Grain and key: one row per (rate_date, currency), as in silver. ``previous_rate`` is the rate
    of the latest earlier ``rate_date`` present for that currency (gaps such as weekends skipped);
    ``change_pct`` = (rate - previous_rate) / previous_rate * 100, rounded half-up to 4 places;
    both NULL on a currency's first day.
    """
    by_currency = Window.partitionBy("currency").orderBy("rate_date")
    previous_rate = sf.lag("rate").over(by_currency)
    return silver.select(
        "rate_date",
        "currency",
        "base",
        "rate",
        sf.lag("rate_date").over(by_currency).alias("previous_rate_date"),
        previous_rate.alias("previous_rate"),
        sf.round((sf.col("rate") - previous_rate) / previous_rate * 100, 4)
        .cast(CHANGE_PCT_TYPE)
        .alias("change_pct"),
    )
