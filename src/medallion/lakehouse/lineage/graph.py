"""The lineage graph the events on disk describe: which job wrote each dataset, from what.

The graph comes from COMPLETE run events only, and from each job's latest one (by eventTime; on
a tie the later line wins): a re-run replaces what the job read and wrote before, and a START,
FAIL or ABORT event adds nothing, since it does not say what a finished run read. Datasets and
jobs are nodes; an input is an edge dataset → job, an output an edge job → dataset.

Raw loads are one directory per load date (``raw/<source>[/<entity>]/load_dt=YYYY-MM-DD``), so
each date would be its own node: a ``file`` dataset whose last path part is ``load_dt=<date>``
becomes ``load_dt=*``, one node per source entity, whichever dates the kept runs read or wrote.

The JSON-lines files may end in a line still being written (no newline yet): that last line is
skipped and reported. Any other line that is not a run event's JSON is an error naming the
file and line.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from medallion.lakehouse.errors import MedallionError
from medallion.lakehouse.lineage.steps import FILE_NAMESPACE, lakehouse_namespace
from medallion.lakehouse.lineage.transport import events_path
from medallion.lakehouse.raw.landing import LOAD_DIR_PREFIX
from medallion.lakehouse.storage import StorageRoot

JOB_NAMESPACE = "medallion"
COMPLETE = "COMPLETE"
ANY_LOAD = f"{LOAD_DIR_PREFIX}*"
_LOAD_DIR = re.compile(rf"/{re.escape(LOAD_DIR_PREFIX)}\d{{4}}-\d{{2}}-\d{{2}}/?$")

NodeKind = Literal["dataset", "job"]


class LineageEventsUnreadable(MedallionError):
    """A line of a lineage events file is not an OpenLineage run event's JSON."""


class DatasetNotInLineage(MedallionError):
    """No kept COMPLETE event wrote the dataset asked for (or several datasets have its name)."""


@dataclass(frozen=True, order=True)
class Node:
    """A dataset or a job, as OpenLineage names it (raw load dates collapsed)."""

    kind: NodeKind
    namespace: str
    name: str


@dataclass(frozen=True)
class SourceField:
    """One input column of an output column (``columnLineage`` facet)."""

    dataset: Node
    field: str


ColumnLineage = tuple[tuple[str, tuple[SourceField, ...]], ...]
"""An output dataset's columns, each with its source columns, in the facet's order."""


@dataclass(frozen=True)
class CompletedRun:
    """What one COMPLETE event says: the job, when, what it read and wrote; where it is."""

    job: Node
    event_time: datetime
    inputs: tuple[Node, ...]
    outputs: tuple[Node, ...]
    column_lineage: Mapping[Node, ColumnLineage]
    where: str
    job_run_id: str | None = None  # the job run the step ran in (its ``medallion_task`` facet)


@dataclass(frozen=True)
class EventLog:
    """The COMPLETE runs of the events files, in file order; truncated last lines skipped."""

    runs: tuple[CompletedRun, ...]
    skipped: tuple[str, ...] = ()


def dataset_node(namespace: str, name: str) -> Node:
    """A dataset node; a raw load directory stands for every load of its source entity."""
    if namespace == FILE_NAMESPACE:
        name = _LOAD_DIR.sub(f"/{ANY_LOAD}", name)
    return Node("dataset", namespace, name)


def read_event_files(paths: Iterable[Path]) -> EventLog:
    """Every COMPLETE run event in ``paths``, in order."""
    runs: list[CompletedRun] = []
    skipped: list[str] = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                event = json.loads(line)
            except json.JSONDecodeError as error:
                if number == len(lines) and not text.endswith("\n"):
                    skipped.append(where)  # a write in progress or cut short: not an event yet
                    continue
                raise LineageEventsUnreadable(
                    f"{where}: expected one OpenLineage event as JSON, found invalid JSON "
                    f"({error.msg}: column {error.colno})"
                ) from None
            run = completed_run(event, where)
            if run is not None:
                runs.append(run)
    return EventLog(tuple(runs), tuple(skipped))


def completed_run(event: Any, where: str) -> CompletedRun | None:
    """The run a COMPLETE run event describes; None for other states and non-run events."""
    if not isinstance(event, dict):
        raise LineageEventsUnreadable(
            f"{where}: expected a JSON object (an OpenLineage event), found {type(event).__name__}"
        )
    if event.get("eventType") != COMPLETE:
        return None  # START / FAIL / ABORT / RUNNING, or a dataset or job event: no run to keep
    job = _mapping(event.get("job"), where, "job")
    outputs = [_dataset(item, where, "outputs") for item in _list(event, where, "outputs")]
    return CompletedRun(
        job=Node("job", _text(job, where, "job.namespace"), _text(job, where, "job.name")),
        event_time=_event_time(event.get("eventTime"), where),
        inputs=tuple(_dataset(item, where, "inputs")[0] for item in _list(event, where, "inputs")),
        outputs=tuple(node for node, _ in outputs),
        column_lineage={
            node: _column_lineage(facets["columnLineage"], where)
            for node, facets in outputs
            if isinstance(facets.get("columnLineage"), dict)
        },
        where=where,
        job_run_id=_job_run_id(event),
    )


def _job_run_id(event: Mapping[str, Any]) -> str | None:
    run = event.get("run")
    facets = run.get("facets") if isinstance(run, dict) else None
    task = facets.get("medallion_task") if isinstance(facets, dict) else None
    found = task.get("job_run_id") if isinstance(task, dict) else None
    return found if isinstance(found, str) else None


def _mapping(value: Any, where: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LineageEventsUnreadable(f"{where}: expected {what} to be an object, found {value!r}")
    return value


def _text(mapping: Mapping[str, Any], where: str, what: str) -> str:
    """``mapping``'s string at the last part of ``what`` (``job.name``: ``name``)."""
    value = mapping.get(what.rsplit(".", 1)[-1])
    if not isinstance(value, str) or not value:
        raise LineageEventsUnreadable(f"{where}: expected {what} to be a string, found {value!r}")
    return value


def _list(event: Mapping[str, Any], where: str, what: str) -> list[Any]:
    value = event.get(what) or []
    if not isinstance(value, list):
        raise LineageEventsUnreadable(f"{where}: expected {what} to be a list, found {value!r}")
    return value


def _dataset(item: Any, where: str, what: str) -> tuple[Node, dict[str, Any]]:
    dataset = _mapping(item, where, f"each of {what}")
    node = dataset_node(
        _text(dataset, where, f"{what}[].namespace"), _text(dataset, where, f"{what}[].name")
    )
    facets = dataset.get("facets")
    return node, facets if isinstance(facets, dict) else {}


def _event_time(value: Any, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise LineageEventsUnreadable(
            f"{where}: expected eventTime as an ISO 8601 time, found {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _column_lineage(facet: Mapping[str, Any], where: str) -> ColumnLineage:
    fields = _mapping(facet.get("fields", {}), where, "columnLineage.fields")
    return tuple(
        (
            column,
            tuple(
                SourceField(
                    dataset_node(
                        _text(source, where, "inputFields[].namespace"),
                        _text(source, where, "inputFields[].name"),
                    ),
                    _text(source, where, "inputFields[].field"),
                )
                for source in (
                    _mapping(item, where, "each of inputFields")
                    for item in _list(_mapping(entry, where, column), where, "inputFields")
                )
            ),
        )
        for column, entry in fields.items()
    )


def latest_runs(runs: Iterable[CompletedRun]) -> dict[Node, CompletedRun]:
    """Each job's latest COMPLETE run: by eventTime, the later of two equal times."""
    latest: dict[Node, CompletedRun] = {}
    for run in runs:
        kept = latest.get(run.job)
        if kept is None or run.event_time >= kept.event_time:
            latest[run.job] = run
    return latest


@dataclass(frozen=True)
class LineageGraph:
    """Datasets and jobs; edges input → job → output; each job's run; display labels."""

    nodes: frozenset[Node]
    edges: frozenset[tuple[Node, Node]]
    runs: Mapping[Node, CompletedRun]
    storage_root: StorageRoot
    _parents: Mapping[Node, tuple[Node, ...]] = field(init=False, repr=False, compare=False)
    _tables: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parents: defaultdict[Node, list[Node]] = defaultdict(list)
        for source, target in self.edges:
            parents[target].append(source)
        object.__setattr__(
            self, "_parents", {node: tuple(sorted(found)) for node, found in parents.items()}
        )
        object.__setattr__(self, "_tables", lakehouse_namespace(self.storage_root))

    def parents(self, node: Node) -> tuple[Node, ...]:
        """The jobs that wrote a dataset, or the datasets a job read; sorted."""
        return self._parents.get(node, ())

    def label(self, node: Node) -> str:
        """How the node is shown: its name, a path under the storage root, or namespace/name."""
        if node.kind == "job":
            return node.name if node.namespace == JOB_NAMESPACE else f"{node.namespace}/{node.name}"
        if node.namespace == self._tables:
            return node.name
        if node.namespace == FILE_NAMESPACE:
            path = Path(node.name)
            if path.is_relative_to(self.storage_root.path):
                return path.relative_to(self.storage_root.path).as_posix()
            return node.name
        return f"{node.namespace}/{node.name}"

    def written(self) -> list[str]:
        """The labels of the datasets some kept run wrote: those with lineage, sorted."""
        return sorted({self.label(target) for source, target in self.edges
                       if source.kind == "job"})

    def find(self, label: str) -> Node:
        """The dataset shown as ``label`` that some kept run wrote."""
        found = [
            node for node in self.nodes
            if node.kind == "dataset" and self.label(node) == label and self.parents(node)
        ]
        if len(found) == 1:
            return found[0]
        where = events_path(self.storage_root).parent
        if found:
            raise DatasetNotInLineage(f"{label!r} names {len(found)} datasets in {where}")
        known = self.written()
        raise DatasetNotInLineage(
            f"no lineage for {label!r} in {where}: "
            + (f"datasets with lineage: {', '.join(known)}" if known
               else "no COMPLETE run event there yet (run a job first)")
        )

    def upstream(self, dataset: Node) -> LineageGraph:
        """``dataset``, the jobs that wrote it, their inputs, and so on back to the sources."""
        nodes, edges = {dataset}, set()
        pending = [dataset]
        while pending:  # a node is expanded once: a cycle ends where it closes
            node = pending.pop()
            for parent in self.parents(node):
                edges.add((parent, node))
                if parent not in nodes:
                    nodes.add(parent)
                    pending.append(parent)
        return LineageGraph(
            nodes=frozenset(nodes),
            edges=frozenset(edges),
            runs={job: run for job, run in self.runs.items() if job in nodes},
            storage_root=self.storage_root,
        )

    def column_lineage(self, dataset: Node) -> ColumnLineage | None:
        """The dataset's column lineage from its latest writer's event, if that has the facet."""
        writers = sorted(
            (self.runs[job] for job in self.parents(dataset) if job in self.runs),
            key=lambda run: run.event_time,
        )
        for run in reversed(writers):
            if dataset in run.column_lineage:
                return run.column_lineage[dataset]
        return None


def build_graph(runs: Iterable[CompletedRun], storage_root: StorageRoot) -> LineageGraph:
    """The graph of each job's latest COMPLETE run."""
    kept = latest_runs(runs)
    edges = {
        edge
        for run in kept.values()
        for edge in (
            *((source, run.job) for source in run.inputs),
            *((run.job, target) for target in run.outputs),
        )
    }
    nodes = {node for edge in edges for node in edge} | set(kept)
    return LineageGraph(frozenset(nodes), frozenset(edges), kept, storage_root)


def event_files(storage_root: StorageRoot) -> list[Path]:
    """The JSON-lines files under ``<storage_root>/_lineage``, by name."""
    folder = events_path(storage_root).parent
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def run_lineage(storage_root: StorageRoot, job_run_id: str) -> LineageGraph:
    """The graph of one job run's steps: what each read and wrote (its COMPLETE events)."""
    log = read_event_files(event_files(storage_root))
    return build_graph((run for run in log.runs if run.job_run_id == job_run_id), storage_root)


def read_lineage(storage_root: StorageRoot) -> tuple[LineageGraph, Sequence[str]]:
    """The graph of the events under ``storage_root``, and the truncated lines skipped."""
    log = read_event_files(event_files(storage_root))
    return build_graph(log.runs, storage_root), log.skipped
