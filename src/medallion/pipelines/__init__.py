"""The steps notebooks call: read, hand to a pure transform, write, and count what happened.

Every step returns a ``StepResult`` whose counts conserve rows: rows_in = rows_written + the rows
dropped, each drop under a named reason. A step whose counts do not add up raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medallion.errors import ConservationError


@dataclass(frozen=True)
class StepResult:
    """What one pipeline step did: where it wrote, rows in, rows written, rows dropped by reason."""

    step: str
    target: str
    rows_in: int
    rows_written: int
    rows_dropped: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows_dropped", dict(self.rows_dropped))
        dropped = sum(self.rows_dropped.values())
        if self.rows_in != self.rows_written + dropped:
            raise ConservationError(
                f"{self.step} -> {self.target}: expected rows_in = rows_written + rows dropped, "
                f"found {self.rows_in} != {self.rows_written} + {dropped} ({self.rows_dropped})"
            )

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for task values, run summaries and MLflow."""
        return {
            "step": self.step,
            "target": self.target,
            "rows_in": self.rows_in,
            "rows_written": self.rows_written,
            "rows_dropped": dict(self.rows_dropped),
        }
