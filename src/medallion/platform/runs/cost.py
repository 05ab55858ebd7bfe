"""The cost model of a bundle target: what a task and a run cost, estimated.

Declared per target as the complex bundle variable ``cost_model`` (``databricks.yml`` declares it,
``bundles/targets.yml`` sets it per target):

- ``{kind: cpu_seconds, usd_per_cpu_hour: R}`` (local): a task costs its notebook kernels' CPU
  seconds * R / 3600; a run costs the CPU seconds of its tasks plus the warm compute server's
  during the run, * R / 3600.
- ``{kind: dbu, dbu_per_hour: D, workers: W, usd_per_dbu: P}`` (Databricks): a task costs
  D * W * its duration in hours * P; a run costs the same for the run's duration, since a job
  cluster is billed while the run holds it, whatever its tasks do. ``dbu_per_hour`` is one node's
  DBU rate; count the driver in ``workers`` when it is billed like one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from medallion.lakehouse.errors import ConfigError

CPU_SECONDS, DBU = "cpu_seconds", "dbu"
_FIELDS = {CPU_SECONDS: ("usd_per_cpu_hour",), DBU: ("dbu_per_hour", "workers", "usd_per_dbu")}


@dataclass(frozen=True)
class CostModel:
    """How a target's runs are priced (see the module docstring for the formulas)."""

    kind: Literal["cpu_seconds", "dbu"]
    usd_per_cpu_hour: float = 0.0
    dbu_per_hour: float = 0.0
    workers: float = 0.0
    usd_per_dbu: float = 0.0

    @classmethod
    def parse(cls, raw: Any, where: str = "variable cost_model") -> CostModel:
        """Validate a ``cost_model`` value; ``ConfigError`` names the key and what was expected."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a mapping with 'kind', found {raw!r}")
        kind = raw.get("kind")
        if kind not in _FIELDS:
            raise ConfigError(
                f"{where}.kind: expected one of {', '.join(sorted(_FIELDS))}, found {kind!r}"
            )
        unknown = sorted(set(raw) - {"kind", *_FIELDS[kind]})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} for kind {kind!r}; "
                              f"expected {', '.join(_FIELDS[kind])}")
        numbers: dict[str, float] = {}
        for name in _FIELDS[kind]:
            value = raw.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{where}.{name}: expected a number >= 0, found {value!r}")
            numbers[name] = float(value)
        return cls(kind=kind, **numbers)

    def as_dict(self) -> dict[str, Any]:
        """The declared fields only, for run summaries."""
        return {"kind": self.kind, **{name: getattr(self, name) for name in _FIELDS[self.kind]}}

    def estimate(self, *, duration_seconds: float, cpu_seconds: float) -> float:
        """Estimated cost in USD of a task or a run that took this long and this much CPU."""
        if self.kind == CPU_SECONDS:
            return round(cpu_seconds / 3600 * self.usd_per_cpu_hour, 6)
        hours = duration_seconds / 3600
        return round(self.dbu_per_hour * self.workers * hours * self.usd_per_dbu, 6)


# Used when a bundle declares no cost model: CPU time is still recorded, priced at nothing.
UNPRICED = CostModel(kind="cpu_seconds", usd_per_cpu_hour=0.0)
