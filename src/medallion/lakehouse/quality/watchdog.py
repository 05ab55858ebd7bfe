"""The DQ watchdog: what the hourly ``dq_watchdog`` job checks on the tables as written.

Three kinds of check, each from the table's spec (``config/dq/<layer>/<table>.yml``):

- **freshness** (``watch.freshness_hours``): the age of the table's newest ``_ingest_ts`` at
  ``as_of`` must be under the SLA. An empty or missing table is stale.
- **volume** (``watch.volume``): the row count of the newest loaded ``_proc_date`` up to the run
  date, over the median of the ``window_days`` days before it that have rows, must lie in
  ``[min_ratio, max_ratio]``. With fewer than ``min_history_days`` such days the check is
  skipped: a new table has no normal yet.
- **suite**: the Great Expectations suites of silver and gold (the DQ breaker's, built from the
  same specs), re-run on the whole tables. Only critical expectations breach.

One table costs one aggregation for freshness and volume together. Every check, passed, failed
or skipped, is appended to the DQ event log (``ops.dq_event_log``, event type
``watchdog_check``). A breach raises ``ExpectationFailed`` naming each failed check as
``<table>: <check> failed (…)``, so the job's task fails and the runner sends its DQ-violation
alert to the job's destinations and the alert channels (``medallion.platform.jobs.channels``).
"""

from __future__ import annotations

import json
import logging
import statistics
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pyspark.sql import functions as sf

from medallion.lakehouse.errors import ConfigError, ExpectationFailed
from medallion.lakehouse.lineage import lineage_job
from medallion.lakehouse.lineage.steps import StepLineage, tables_lineage
from medallion.lakehouse.quality.breaker import BreakerCheck, validate_layer
from medallion.lakehouse.quality.event_log import DQ_EVENT_LOG, dq_events_frame, write_events
from medallion.lakehouse.quality.spec import TableSpec, VolumeWatch, load_specs
from medallion.lakehouse.tables import Lakehouse

LOG = logging.getLogger(__name__)
EVENT_TYPE = "watchdog_check"
WATCHED_LAYERS = ("bronze", "silver", "gold")
SUITE_LAYERS = ("silver", "gold")
INGEST_TS = "_ingest_ts"
PROC_DATE = "_proc_date"


class Status(StrEnum):
    """A check's outcome."""

    PASSED = "passed"
    FAILED = "failed"
    WARNED = "warned"  # a failed GE expectation that is only a warning
    SKIPPED = "skipped"


@dataclass(frozen=True)
class WatchCheck:
    """One check's outcome on one table: what was observed against what was expected."""

    dataset: str
    check: str
    kind: str  # freshness, volume or suite
    status: Status
    observed: float | int | str | None
    expected: str

    @property
    def breached(self) -> bool:
        """Whether this check alerts."""
        return self.status is Status.FAILED

    def line(self) -> str:
        """``<table>: <check> failed (observed …, expected …)``: the alert's line for it."""
        return (f"{self.dataset}: {self.check} {self.status} "
                f"(observed {self.observed}, expected {self.expected})")

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for the event log and task values."""
        return {"dataset": self.dataset, "check": self.check, "kind": self.kind,
                "status": str(self.status), "observed": self.observed,
                "expected": self.expected}


@dataclass(frozen=True)
class WatchdogResult:
    """Every check of one watchdog run."""

    run_date: date
    as_of: datetime
    checks: tuple[WatchCheck, ...] = field(default_factory=tuple)

    @property
    def breaches(self) -> tuple[WatchCheck, ...]:
        """The failed checks."""
        return tuple(check for check in self.checks if check.breached)

    def summary(self) -> dict[str, Any]:
        """Counts per kind and status, and the breaches' lines: the task's values."""
        counts: dict[str, dict[str, int]] = {}
        for check in self.checks:
            by_status = counts.setdefault(check.kind, {str(s): 0 for s in Status})
            by_status[str(check.status)] += 1
        return {"run_date": self.run_date.isoformat(), "as_of": self.as_of.isoformat(),
                "checks": len(self.checks), "breaches": [c.line() for c in self.breaches],
                "by_kind": counts}

    def failure_message(self) -> str:
        """The ``ExpectationFailed`` text: one line per breach."""
        return (f"DQ watchdog: {len(self.breaches)} check(s) breached at "
                f"{self.as_of.isoformat(timespec='seconds')}:\n  "
                + "\n  ".join(check.line() for check in self.breaches))


def freshness_check(spec: TableSpec, newest: datetime | None, as_of: datetime) -> WatchCheck:
    """``spec``'s freshness at ``as_of`` given its newest ``_ingest_ts`` (None: no rows)."""
    sla = spec.watch.freshness_hours
    assert sla is not None
    expected = f"newest {INGEST_TS} under {sla:g} h old"
    if newest is None:
        return WatchCheck(spec.dataset, "freshness", "freshness", Status.FAILED, "no rows",
                          expected)
    age_hours = round((as_of - newest).total_seconds() / 3600, 2)
    status = Status.PASSED if age_hours < sla else Status.FAILED
    return WatchCheck(spec.dataset, "freshness", "freshness", status, f"{age_hours:g} h old",
                      expected)


def volume_check(dataset: str, watch: VolumeWatch, counts: Mapping[date, int],
                 run_date: date) -> WatchCheck:
    """The newest loaded day's count (up to ``run_date``) against the trailing days' median.

    The newest day with rows, not ``run_date`` itself: an hourly run before the day's load
    would otherwise report every table at zero. A load that is late is the freshness check's
    breach, so it is reported once, by the check that knows why.
    """
    loaded = [day for day, rows in counts.items() if rows and day <= run_date]
    day = max(loaded, default=run_date)
    rows = counts.get(day, 0)
    window = [counts[earlier] for earlier in _days_before(day, watch.window_days)
              if counts.get(earlier)]
    expected = f"{watch.min_ratio:g}x to {watch.max_ratio:g}x the median of the trailing days"
    if len(window) < watch.min_history_days:
        return WatchCheck(dataset, "volume", "volume", Status.SKIPPED,
                          f"{rows} rows on {day}, {len(window)} earlier day(s)",
                          f"at least {watch.min_history_days} earlier day(s) with rows")
    median = statistics.median(window)
    ratio = rows / median
    status = Status.PASSED if watch.min_ratio <= ratio <= watch.max_ratio else Status.FAILED
    return WatchCheck(dataset, "volume", "volume", status,
                      f"{rows} rows on {day} = {ratio:.2f}x median {median:g}", expected)


def suite_check(check: BreakerCheck) -> WatchCheck:
    """A GE expectation's outcome as a watchdog check (warnings never breach)."""
    failed = Status.FAILED if check.critical else Status.WARNED
    status = Status.PASSED if check.success else failed
    observed = check.unexpected if check.unexpected is not None else check.observed
    return WatchCheck(check.table, check.name, "suite", status, observed,
                      "critical" if check.critical else "warning only")


def parse_as_of(text: str) -> datetime | None:
    """The ``as_of`` parameter: an ISO 8601 moment (UTC without an offset), "" for now."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise ConfigError(
            f"as_of: expected an ISO 8601 date-time such as 2026-11-27T10:00:00Z or empty "
            f"(now), found {text!r}"
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_watchdog_lineage(lakehouse: Lakehouse, suite_layers: Sequence[str],
                         datasets: Sequence[str] | None, **_: object) -> StepLineage:
    """The watchdog reads the watched tables and the suites' layers, writes the DQ event log."""
    watched = [*(spec.dataset for spec in watched_specs(datasets)),
               *(table for layer in suite_layers for table in sorted(load_specs(layer)))]
    return replace(
        tables_lineage("dq_watchdog", lakehouse, inputs=watched, outputs=[DQ_EVENT_LOG]),
        rows_written=lambda result: {DQ_EVENT_LOG: len(result.checks)},
    )


@lineage_job(run_watchdog_lineage)
def run_watchdog(
    lakehouse: Lakehouse,
    *,
    run_date: date,
    as_of: datetime | None = None,
    run_id: str = "manual",
    task: str = "manual",
    suite_layers: Sequence[str] = SUITE_LAYERS,
    datasets: Sequence[str] | None = None,
) -> WatchdogResult:
    """Check freshness, volume and the GE suites; log every check; raise on any breach.

    ``datasets`` limits the freshness and volume checks to those tables (default: every table
    whose spec has a ``watch`` section); ``suite_layers`` names the layers whose suites run.
    """
    as_of = as_of or datetime.now(UTC)
    checks: list[WatchCheck] = []
    for spec in watched_specs(datasets):
        checks.extend(_watch_table(lakehouse, spec, run_date, as_of))
    for layer in suite_layers:
        checks.extend(suite_check(check) for check in validate_layer(lakehouse, layer).checks)
    result = WatchdogResult(run_date=run_date, as_of=as_of, checks=tuple(checks))
    log_watchdog(lakehouse, result, run_id=run_id, task=task)
    LOG.info("DQ watchdog: %s", result.summary())
    if result.breaches:
        raise ExpectationFailed(result.failure_message())
    return result


def watched_specs(datasets: Sequence[str] | None = None) -> list[TableSpec]:
    """The specs with a ``watch`` section (of ``datasets`` only, when given), by layer."""
    specs = [spec for layer in WATCHED_LAYERS for spec in load_specs(layer).values()
             if spec.watch.freshness_hours is not None or spec.watch.volume is not None]
    if datasets is None:
        return specs
    unknown = sorted(set(datasets) - {spec.dataset for spec in specs})
    if unknown:
        raise ConfigError(f"datasets: expected tables whose spec has a watch section, found "
                          f"{', '.join(unknown)}")
    return [spec for spec in specs if spec.dataset in datasets]


def _watch_table(lakehouse: Lakehouse, spec: TableSpec, run_date: date,
                 as_of: datetime) -> list[WatchCheck]:
    """The freshness and volume checks ``spec`` asks for, from one aggregation."""
    watch = spec.watch
    newest, counts = _newest_and_counts(lakehouse, spec.dataset, watch.volume is not None)
    checks = []
    if watch.freshness_hours is not None:
        checks.append(freshness_check(spec, newest, as_of))
    if watch.volume is not None:
        checks.append(volume_check(spec.dataset, watch.volume, counts, run_date))
    return checks


def _newest_and_counts(lakehouse: Lakehouse, dataset: str, by_day: bool
                       ) -> tuple[datetime | None, dict[date, int]]:
    """The newest ``_ingest_ts`` (UTC) and, when asked, the rows per ``_proc_date``."""
    if not lakehouse.exists(dataset):
        return None, {}
    table = lakehouse.read(dataset)
    newest = sf.max(sf.unix_micros(sf.col(INGEST_TS))).alias("newest")
    if by_day:
        rows = table.groupBy(PROC_DATE).agg(sf.count(sf.lit(1)).alias("rows"), newest).collect()
    else:
        rows = table.agg(newest).collect()
    micros = [row["newest"] for row in rows if row["newest"] is not None]
    newest_ts = (datetime.fromtimestamp(max(micros) / 1e6, UTC) if micros else None)
    counts = {row[PROC_DATE]: int(row["rows"]) for row in rows} if by_day else {}
    return newest_ts, counts


def _days_before(run_date: date, days: int) -> list[date]:
    return [run_date - timedelta(days=offset) for offset in range(1, days + 1)]


def log_watchdog(lakehouse: Lakehouse, result: WatchdogResult, *, run_id: str,
                 task: str) -> None:
    """Append one ``watchdog_check`` event per check to the DQ event log."""
    timestamp = datetime.now(UTC)
    events = [
        (str(uuid.uuid4()), timestamp, run_id, "dq_watchdog", task, check.dataset,
         check.dataset.split(".")[0], EVENT_TYPE,
         json.dumps({"watchdog": {**check.as_dict(), "run_date": result.run_date.isoformat(),
                                  "as_of": result.as_of.isoformat()}}, sort_keys=True))
        for check in result.checks
    ]
    if events:
        write_events(lakehouse, dq_events_frame(lakehouse.spark, events))


__all__ = ["DQ_EVENT_LOG", "EVENT_TYPE", "Status", "WatchCheck", "WatchdogResult",
           "freshness_check", "log_watchdog", "parse_as_of", "run_watchdog", "suite_check",
           "volume_check", "watched_specs"]
