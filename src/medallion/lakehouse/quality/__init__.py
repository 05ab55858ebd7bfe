"""Data quality: table specs, the single-pass expectation engine, DLT-shaped metrics, event log."""

from __future__ import annotations

from medallion.lakehouse.quality.engine import (
    CheckedFrame,
    ExpectationsFailed,
    add_lookups,
    check_expectations,
)
from medallion.lakehouse.quality.event_log import DQ_EVENT_LOG, append_dq_event, read_dq_events
from medallion.lakehouse.quality.metrics import DQMetrics, ExpectationMetrics
from medallion.lakehouse.quality.spec import (
    Action,
    Build,
    Checks,
    Expectation,
    Lookup,
    TableSpec,
    Transformations,
    build_order,
    load_spec,
    load_specs,
    spec_for,
)

__all__ = [
    "DQ_EVENT_LOG",
    "Action",
    "Build",
    "CheckedFrame",
    "Checks",
    "DQMetrics",
    "Expectation",
    "ExpectationMetrics",
    "ExpectationsFailed",
    "Lookup",
    "TableSpec",
    "Transformations",
    "add_lookups",
    "append_dq_event",
    "build_order",
    "check_expectations",
    "load_spec",
    "load_specs",
    "read_dq_events",
    "spec_for",
]
