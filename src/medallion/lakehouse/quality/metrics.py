"""DQ metrics of one expectation check, and their DLT event-log (``flow_progress``) shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medallion.lakehouse.errors import ConservationError


@dataclass(frozen=True)
class ExpectationMetrics:
    """How many rows passed and failed one rule."""

    name: str
    action: str
    expression: str
    passed_records: int
    failed_records: int

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for task values and run summaries."""
        return {
            "name": self.name,
            "action": self.action,
            "expression": self.expression,
            "passed_records": self.passed_records,
            "failed_records": self.failed_records,
        }


@dataclass(frozen=True)
class DQMetrics:
    """Row counts of one check: in, valid, quarantined, dropped per drop rule, and per rule."""

    dataset: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    dropped_by_rule: Mapping[str, int] = field(default_factory=dict)
    expectations: tuple[ExpectationMetrics, ...] = ()

    @property
    def dropped_records(self) -> int:
        """Rows dropped by any ``expect_or_drop`` rule."""
        return sum(self.dropped_by_rule.values())

    def check_conservation(self) -> None:
        """Raise ``ConservationError`` unless rows in = valid + quarantined + dropped by rule."""
        accounted = self.rows_valid + self.rows_quarantined + self.dropped_records
        if accounted != self.rows_in:
            by_rule = ", ".join(f"{name}={count}" for name, count in self.dropped_by_rule.items())
            raise ConservationError(
                f"{self.dataset}: expected rows in = valid + quarantined + dropped by rule, found "
                f"{self.rows_in} in but {self.rows_valid} valid + {self.rows_quarantined} "
                f"quarantined + {self.dropped_records} dropped ({by_rule or 'no drop rules'}) "
                f"= {accounted}"
            )
        for rule in self.expectations:
            if rule.passed_records + rule.failed_records != self.rows_in:
                raise ConservationError(
                    f"{self.dataset}: rule {rule.name!r}: expected passed + failed = "
                    f"{self.rows_in} rows in, found {rule.passed_records} passed + "
                    f"{rule.failed_records} failed"
                )

    def failed_of(self, name: str) -> int:
        """Failed rows of the rule ``name`` (0 for a rule this check did not run)."""
        return next((rule.failed_records for rule in self.expectations if rule.name == name), 0)

    def to_flow_progress(self, dataset: str | None = None) -> dict[str, Any]:
        """The DLT event-log ``flow_progress`` details, so DLT dashboards read them unchanged."""
        name = dataset or self.dataset
        return {
            "flow_progress": {
                "metrics": {"num_output_rows": self.rows_valid},
                "data_quality": {
                    "dropped_records": self.dropped_records,
                    "expectations": [
                        {
                            "name": rule.name,
                            "dataset": name,
                            "passed_records": rule.passed_records,
                            "failed_records": rule.failed_records,
                        }
                        for rule in self.expectations
                    ],
                },
            }
        }

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for task values and run summaries."""
        return {
            "dataset": self.dataset,
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_quarantined": self.rows_quarantined,
            "dropped_records": self.dropped_records,
            "dropped_by_rule": dict(self.dropped_by_rule),
            "expectations": [rule.as_dict() for rule in self.expectations],
        }
