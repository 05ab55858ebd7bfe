"""The steps notebooks call: read, hand to a pure transform, write, and count what happened.

Every step returns a ``StepResult`` whose counts conserve rows: rows_in = rows_written + rows
quarantined + rows dropped, each quarantine and drop under a named rule. A step whose counts do
not add up raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medallion.lakehouse.errors import ConservationError

if TYPE_CHECKING:
    from medallion.lakehouse.quality.engine import QuarantineSample


@dataclass(frozen=True)
class StepResult:
    """What one pipeline step did: where it wrote, rows in, written, quarantined and dropped.

    ``rows_quarantined`` counts rows moved to the quarantine table (by the first rule they failed
    in ``quarantined_by``, which may be empty when only the total is known); ``rows_dropped``
    counts rows dropped on purpose, by the named rule that dropped them.
    ``quarantine_sample``: a few of the rows it quarantined, taken from the rows it wrote, for
    its notebook to show (``display.show_quarantine``); None when the step took none.
    """

    step: str
    target: str
    rows_in: int
    rows_written: int
    rows_dropped: Mapping[str, int] = field(default_factory=dict)
    rows_quarantined: int = 0
    quarantine_sample: QuarantineSample | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows_dropped", dict(self.rows_dropped))
        dropped = sum(self.rows_dropped.values())
        if self.rows_in != self.rows_written + self.rows_quarantined + dropped:
            raise ConservationError(
                f"{self.step} -> {self.target}: expected rows_in = rows_written + "
                f"rows_quarantined + rows dropped, found {self.rows_in} != {self.rows_written} + "
                f"{self.rows_quarantined} + {dropped} ({self.rows_dropped})"
            )

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for task values, run summaries and MLflow."""
        return {
            "step": self.step,
            "target": self.target,
            "rows_in": self.rows_in,
            "rows_written": self.rows_written,
            "rows_quarantined": self.rows_quarantined,
            "rows_dropped": dict(self.rows_dropped),
        }
