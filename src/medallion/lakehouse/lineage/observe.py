"""What a running step shows its lineage wrapper: DQ metrics it logged, frames it wrote.

A step wrapped by ``lineage_job`` runs inside ``observing()``; the code that already handles
these values (the DQ event log, the gold build) hands them over with one call, so steps need no
lineage arguments. Outside a wrapped step the calls do nothing. Kept free of heavy imports: the
quality and pipeline modules import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from medallion.lakehouse.quality.metrics import DQMetrics


@dataclass
class Observations:
    """Collected during one step run: DQ metrics per check, and written frames by dataset."""

    dq_metrics: list[DQMetrics] = field(default_factory=list)
    frames: dict[str, DataFrame] = field(default_factory=dict)


_CURRENT: ContextVar[Observations | None] = ContextVar("medallion_lineage_run", default=None)


def current_observations() -> Observations | None:
    """The observations of the wrapped step running in this context, if any."""
    return _CURRENT.get()


@contextmanager
def observing() -> Iterator[Observations]:
    """Collect what the step running in this block reports."""
    observations = Observations()
    token = _CURRENT.set(observations)
    try:
        yield observations
    finally:
        _CURRENT.reset(token)


def observe_dq_metrics(metrics: DQMetrics) -> None:
    """Record one expectation check's metrics for the running step's lineage events."""
    observations = _CURRENT.get()
    if observations is not None:
        observations.dq_metrics.append(metrics)


def observe_output_frame(dataset: str, frame: DataFrame) -> None:
    """Record the frame the running step writes to ``dataset`` (its plan gives column lineage)."""
    observations = _CURRENT.get()
    if observations is not None:
        observations.frames[dataset] = frame
