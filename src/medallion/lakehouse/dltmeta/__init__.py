"""Lakeflow Declarative Pipelines via dlt-meta, generated from our table specs (config/dq).

``build_onboarding`` maps the parsed specs to dlt-meta's onboarding file, DQE, silver
transformation and bronze schema files; ``write_onboarding`` writes them. ``medallion dlt-meta
onboard`` does both; docs/dlt_meta.md has the mapping, what is left out and how to deploy.
"""

from __future__ import annotations

from medallion.lakehouse.dltmeta.files import write_onboarding
from medallion.lakehouse.dltmeta.onboarding import (
    DltMetaTarget,
    LeftOut,
    Onboarding,
    UnsupportedByDltMeta,
    build_onboarding,
)

__all__ = [
    "DltMetaTarget",
    "LeftOut",
    "Onboarding",
    "UnsupportedByDltMeta",
    "build_onboarding",
    "write_onboarding",
]
