"""What a running step shows its lineage wrapper: DQ metrics it logged, frames it wrote.

A step wrapped by ``lineage_job`` runs inside ``observing()``; the code that already handles
these values (the DQ event log, the gold build) hands them over with one call, so steps need no
lineage arguments. Outside a wrapped step the calls do nothing. Kept free of heavy imports: the
quality and pipeline modules import it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from medallion.lakehouse.quality.metrics import DQMetrics


@dataclass
class Observations:
    """Collected during one step run: DQ metrics per check, and written frames by dataset.

    With ``explain_frames``, a written frame's plans are asked of Spark as soon as the frame is
    observed, on a thread of their own (Spark Connect only, whose client returns the text):
    planning a whole gold transform takes ~0.5 s, which the step's own work then hides.
    """

    dq_metrics: list[DQMetrics] = field(default_factory=list)
    frames: dict[str, DataFrame] = field(default_factory=dict)
    explain_frames: bool = False
    _explained: dict[str, Future[str]] = field(default_factory=dict)

    def observe_frame(self, dataset: str, frame: DataFrame) -> None:
        """Record the frame written to ``dataset``; start explaining it where that can run
        beside the step."""
        from medallion.lakehouse.lineage.columns import explained, explains_without_printing

        self.frames[dataset] = frame
        if not (self.explain_frames and explains_without_printing(frame)):
            return
        future: Future[str] = Future()

        def explain() -> None:
            try:
                future.set_result(explained(frame))
            except BaseException as error:  # handed to whoever asks for the plan
                future.set_exception(error)

        self._explained[dataset] = future
        threading.Thread(target=explain, daemon=True, name="lineage-explain").start()

    def analyzed_plan(self, dataset: str) -> str:
        """The analyzed logical plan of the frame written to ``dataset``."""
        from medallion.lakehouse.lineage.columns import analyzed_plan_text, analyzed_section

        future = self._explained.get(dataset)
        if future is not None:
            return analyzed_section(future.result())
        return analyzed_plan_text(self.frames[dataset])


_CURRENT: ContextVar[Observations | None] = ContextVar("medallion_lineage_run", default=None)


def current_observations() -> Observations | None:
    """The observations of the wrapped step running in this context, if any."""
    return _CURRENT.get()


@contextmanager
def observing(*, explain_frames: bool = False) -> Iterator[Observations]:
    """Collect what the step running in this block reports (``Observations``)."""
    observations = Observations(explain_frames=explain_frames)
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
        observations.observe_frame(dataset, frame)
