"""Table / DQ specs (``config/dq/<layer>/<table>.yml``), validated into typed objects when loaded.

A spec is checked against ``config/dq/dq_spec.schema.json``, then for what a schema cannot say:
a rule name used twice, a dataset or layer that does not match the file's place, and SQL that
does not parse (checked with sqlglot's Spark dialect, so no Spark session is needed to load).
Every problem raises ``SpecError`` naming the file, the key path, what was expected and found.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from graphlib import TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import sqlglot
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import TokenType

from medallion.lakehouse.errors import ConfigError, SpecError
from medallion.lakehouse.issues import BundleIssue, with_suggestion
from medallion.lakehouse.settings import PACKAGE_DIR, config_dir, repo_root
from medallion.lakehouse.tables import SCHEMAS, split_table_name
from medallion.lakehouse.yaml_positions import Node, child_path, load_yaml_file, node_at, to_plain

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class Action(StrEnum):
    """What happens to a row that fails a rule."""

    WARN = "warn"
    DROP = "drop"
    QUARANTINE = "quarantine"
    FAIL = "fail"


@dataclass(frozen=True)
class Expectation:
    """One named rule: a SQL predicate describing a valid row, and what to do when it fails."""

    name: str
    expression: str
    action: Action


SCHEMA_FILE = "dq_spec.schema.json"
RAW_PREFIX = "raw/"  # a bronze table's source: raw/<source>[/<entity>]
GROUP_ACTIONS: Mapping[str, Action] = {
    "expect": Action.WARN,
    "expect_all": Action.WARN,
    "expect_or_drop": Action.DROP,
    "expect_all_or_drop": Action.DROP,
    "expect_or_quarantine": Action.QUARANTINE,
    "expect_all_or_quarantine": Action.QUARANTINE,
    "expect_or_fail": Action.FAIL,
    "expect_all_or_fail": Action.FAIL,
}
_KINDS = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "nothing (null)",
}
_EXPECTED_TYPE = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}
# A predicate or select expression is one expression, never a statement.
_STATEMENTS = (exp.Query, exp.DDL, exp.DML, exp.Command, exp.Block)
_OPENING = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
_CLOSING = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}


@dataclass(frozen=True)
class Lookup:
    """A boolean column ``name``: does the row's ``on`` key exist in ``table``?"""

    name: str
    table: str
    on: tuple[str, ...]


@dataclass(frozen=True)
class Transformations:
    """dlt-meta silver transformations: ``select_exp`` then each ``where_clause``, in order."""

    select_exp: tuple[str, ...] = ()
    where_clause: tuple[str, ...] = ()


@dataclass(frozen=True)
class Checks:
    """Table-level row-count bounds (bronze, gold)."""

    min_rows: int | None = None
    max_rows: int | None = None


@dataclass(frozen=True)
class VolumeWatch:
    """The run date's row count over the trailing days' median must lie in [min, max ratio].

    Days of the window without rows are left out of the median; with fewer than
    ``min_history_days`` days the check is skipped (a new table has no normal yet).
    """

    window_days: int = 7
    min_history_days: int = 2
    min_ratio: float = 0.5
    max_ratio: float = 2.0


@dataclass(frozen=True)
class Watch:
    """What the hourly ``dq_watchdog`` job checks on a table
    (``medallion.lakehouse.quality.watchdog``)."""

    freshness_hours: float | None = None
    volume: VolumeWatch | None = None


@dataclass(frozen=True)
class Grain:
    """Gold conservation: a row per row of ``rows_per``, or ``sums`` adding up to ``of``'s rows."""

    rows_per: str | None = None
    sums: str | None = None
    of: str | None = None


@dataclass(frozen=True)
class Reference:
    """Gold foreign key ``name``: every row's ``column`` is a key of ``table`` (hashed: salted)."""

    name: str
    column: str
    table: str
    hashed: bool = False


@dataclass(frozen=True)
class UsdRates:
    """Gold: every order of ``orders`` has a USD rate in ``rates`` on or before its date."""

    orders: str
    rates: str


@dataclass(frozen=True)
class Build:
    """How the generic silver or gold step builds a table (the spec's ``build``)."""

    transform: str | None = None
    incremental: str | None = None
    columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    tie_break: tuple[str, ...] = ()
    keep_current_when_null: tuple[str, ...] = ()
    skip_unchanged: bool = False
    full_loads: tuple[str, ...] = ()
    persist: bool = True
    grain: Grain = field(default_factory=Grain)
    reference: Reference | None = None
    usd_rates: UsdRates | None = None


@dataclass(frozen=True)
class Publish:
    """Gold served to the warehouses: the columns whose sums must equal gold's (``reconcile``)."""

    reconcile: tuple[str, ...]


@dataclass(frozen=True)
class LineChart:
    """``sum(y)`` per ``x``, one line per value of ``series``."""

    x: str
    series: str
    y: str
    title: str


@dataclass(frozen=True)
class Histogram:
    """The distribution of ``column``; ``unit`` names what is counted."""

    column: str
    title: str
    unit: str


@dataclass(frozen=True)
class TopRows:
    """The rows with the highest ``by``, shown as ``columns``."""

    by: str
    columns: tuple[str, ...]
    title: str


@dataclass(frozen=True)
class Display:
    """The charts a notebook shows under a gold table's first rows."""

    line: LineChart | None = None
    histogram: Histogram | None = None
    top: TopRows | None = None


@dataclass(frozen=True)
class TableSpec:
    """One table's spec: sources, keys, sequence, transformations, lookups and expectations."""

    dataset: str
    layer: str
    sources: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    sequence_by: str | None = None
    quarantine_table: str = ""
    lookups: tuple[Lookup, ...] = ()
    transformations: Transformations = field(default_factory=Transformations)
    expectations: tuple[Expectation, ...] = ()
    checks: Checks = field(default_factory=Checks)
    watch: Watch = field(default_factory=Watch)
    load_pattern: str | None = None
    build: Build = field(default_factory=Build)
    publish: Publish | None = None
    display: Display = field(default_factory=Display)

    def __post_init__(self) -> None:
        if not self.quarantine_table:
            object.__setattr__(self, "quarantine_table", f"{self.dataset}_quarantine")

    @property
    def raw_source(self) -> tuple[str, str | None]:
        """Bronze: the raw source and entity that feed the table, from its one source
        ``raw/<source>[/<entity>]``; ``SpecError`` for any other ``sources``."""
        raw = [source for source in self.sources if source.startswith(RAW_PREFIX)]
        parts = raw[0].removeprefix(RAW_PREFIX).split("/") if len(raw) == 1 else []
        if len(parts) not in {1, 2} or len(self.sources) != 1:
            raise SpecError(
                f"{self.dataset}: sources: expected one raw source, raw/<source>[/<entity>], "
                f"found {list(self.sources)}"
            )
        return parts[0], parts[1] if len(parts) == 2 else None

    @property
    def name(self) -> str:
        """The table's name without its schema: ``fact_orders`` for ``silver.fact_orders``."""
        return self.dataset.split(".", 1)[1]

    def expectations_for(self, action: Action) -> tuple[Expectation, ...]:
        """The rules with ``action``, in spec order."""
        return tuple(rule for rule in self.expectations if rule.action is action)

    def apply_transformations(self, frame: DataFrame) -> DataFrame:
        """``selectExpr`` of ``select_exp`` (when any), then each ``where_clause`` in order."""
        if self.transformations.select_exp:
            frame = frame.selectExpr(*self.transformations.select_exp)
        for clause in self.transformations.where_clause:
            frame = frame.where(clause)
        return frame


def dq_dir() -> Path:
    """Where the DQ specs live: ``<config>/dq``."""
    return config_dir() / "dq"


def schema_path() -> Path:
    """The spec JSON Schema: next to the specs, else the package's (specs moved elsewhere)."""
    beside = dq_dir() / SCHEMA_FILE
    return beside if beside.is_file() else (PACKAGE_DIR / "config" / "dq" / SCHEMA_FILE).resolve()


def load_spec(path: str | Path) -> TableSpec:
    """Load and validate one spec file; ``SpecError`` names every problem found.

    Loaded once per version of the file: a spec is read, validated and typed the first time it
    is asked for, and again only after the file changed.
    """
    spec_file = Path(path).resolve()
    try:
        mtime_ns = spec_file.stat().st_mtime_ns
    except OSError:
        mtime_ns = -1  # reading it fails below, with the file named
    return _load_spec(spec_file, mtime_ns)


@functools.lru_cache(maxsize=256)
def _load_spec(spec_file: Path, mtime_ns: int) -> TableSpec:
    """``load_spec`` for one version of the file."""
    tree, issues = load_yaml_file(spec_file, repo_root())
    name = _display_name(spec_file)
    if tree is None:
        raise SpecError(_render(name, [_spec_wording(issue) for issue in issues]))
    issues = [*issues, *_schema_issues(tree, schema_path())]
    if issues:
        raise SpecError(_render(name, issues))
    spec = _build(to_plain(tree))
    issues = [*_place_issues(spec, tree, spec_file), *_build_issues(spec, tree),
              *_rule_issues(tree), *_sql_issues(tree)]
    if issues:
        raise SpecError(_render(name, issues))
    return spec


def load_specs(layer: str | None = None) -> dict[str, TableSpec]:
    """Every spec of ``layer`` (every layer when None), by dataset name."""
    if layer is not None and layer not in SCHEMAS:
        raise SpecError(
            with_suggestion(
                f"layer {layer!r}: expected one of {', '.join(SCHEMAS)}", layer, SCHEMAS, ""
            )
        )
    layers = (layer,) if layer else SCHEMAS
    specs = [load_spec(path) for name in layers for path in sorted((dq_dir() / name).glob("*.yml"))]
    return {spec.dataset: spec for spec in specs}


def build_order(specs: Iterable[TableSpec]) -> list[TableSpec]:
    """``specs`` so that a table comes after the tables of its layer it reads or looks up
    (``silver.dim_customer`` before ``silver.fact_orders``), else by name."""
    by_dataset = {spec.dataset: spec for spec in specs}
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for dataset in sorted(by_dataset):
        spec = by_dataset[dataset]
        reads = [*spec.sources, *(lookup.table for lookup in spec.lookups)]
        sorter.add(dataset, *sorted(table for table in reads if table in by_dataset))
    return [by_dataset[dataset] for dataset in sorter.static_order()]


def transform_of(spec: TableSpec) -> Callable[..., DataFrame] | None:
    """The function ``build.transform`` names (``package.module:function``), None when unset.

    Imported on first use, so loading the specs needs neither Spark nor the transforms.
    """
    return _function_at(spec, "transform", spec.build.transform)


def incremental_of(spec: TableSpec) -> Callable[..., Any] | None:
    """The function ``build.incremental`` names (gold: which rows a day's changes touch), None
    when unset (every build is then a full rebuild)."""
    return _function_at(spec, "incremental", spec.build.incremental)


def _function_at(spec: TableSpec, key: str, path: str | None) -> Callable[..., Any] | None:
    """The function ``build.<key>`` names (``package.module:function``), imported; None when
    ``path`` is None."""
    if path is None:
        return None
    module_name, _, function_name = path.partition(":")
    where = f"{spec.dataset}: build.{key}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{where}: expected an importable module {module_name!r}, found none ({exc})"
        ) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(
            f"{where}: expected a function {function_name!r} in {module_name}, found none"
        )
    return cast("Callable[..., Any]", function)


def spec_for(dataset: str) -> TableSpec:
    """The spec of ``dataset`` (e.g. ``"silver.fact_orders"``), from ``<config>/dq/<layer>/``."""
    layer, table = split_table_name(dataset)
    path = dq_dir() / layer / f"{table}.yml"
    if not path.is_file():
        known = [f"{spec.parent.name}.{spec.stem}" for spec in dq_dir().glob("*/*.yml")]
        raise SpecError(
            with_suggestion(
                f"no DQ spec for {dataset!r}: expected the file {_display_name(path)}",
                dataset,
                known,
                f"found specs for {', '.join(sorted(known)) or 'no tables'}",
            )
        )
    return load_spec(path)


def _display_name(path: Path) -> str:
    """The file as a message shows it: relative to the repository when inside it."""
    try:
        return path.resolve().relative_to(repo_root().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _render(name: str, issues: list[BundleIssue]) -> str:
    """One line per problem, each located by line and key path."""
    lines = [f"DQ spec {name} is invalid ({len(issues)} error(s)):"]
    for issue in issues:
        where = f"line {issue.line}: " if issue.line else ""
        path = f"{issue.yaml_path}: " if issue.yaml_path else ""
        lines.append(f"  {name}: {where}{path}{issue.message}")
    return "\n".join(lines)


def _spec_wording(issue: BundleIssue) -> BundleIssue:
    """The YAML reader words a non-mapping document for bundles; say what a spec starts with."""
    if issue.message.startswith("a bundle file must be a YAML mapping"):
        message = "expected a YAML mapping starting with `dataset:`, found another kind of document"
        return BundleIssue(issue.file, issue.line, issue.yaml_path, message)
    return issue


@functools.lru_cache(maxsize=4)
def _validator(path: str, mtime_ns: int) -> Draft202012Validator:
    """The schema's validator, built once per (file, version)."""
    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def _schema_issues(tree: Node, schema: Path) -> list[BundleIssue]:
    """Every JSON Schema error of the spec, located and worded as expected vs found."""
    if not schema.is_file():
        raise SpecError(f"DQ spec schema: expected the file {_display_name(schema)}, found none")
    validator = _validator(str(schema.resolve()), schema.stat().st_mtime_ns)
    issues = [
        issue
        for error in validator.iter_errors(to_plain(tree))
        for issue in _issues_for(error, tree)
    ]
    return sorted(issues, key=lambda issue: (issue.line, issue.yaml_path))


def _issues_for(error: ValidationError, tree: Node) -> Iterator[BundleIssue]:
    """Turn one schema error into located issues."""
    parts = list(error.absolute_path)
    node = node_at(tree, parts)
    path = ""
    for part in parts:
        path = child_path(path, part)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(schema.get("properties", {}))
        for key in error.instance:
            if key not in allowed:
                child = node.get(key) or node
                message = with_suggestion(
                    f"unknown key {key!r}", key, allowed, f"expected one of {', '.join(allowed)}"
                )
                yield BundleIssue(tree.file, child.line, child_path(path, key), message)
        return
    if "propertyNames" in error.absolute_schema_path:
        key = str(error.instance)
        child = node.get(key) or node
        yield BundleIssue(
            tree.file,
            child.line,
            child_path(path, key),
            f"expected a snake_case rule name (^[a-z][a-z0-9_]*$), found {key!r}",
        )
        return
    required: Any = error.validator_value
    if error.validator == "required" and isinstance(error.instance, dict):
        for key in required:
            if key not in error.instance:
                message = f"expected the key {key!r}, found none; add it"
                yield BundleIssue(tree.file, node.line, child_path(path, key), message)
        return
    yield BundleIssue(tree.file, node.line, path, _expected_found(error))


def _expected_found(error: ValidationError) -> str:
    """``expected <what the schema wants>, found <what the file has>``."""
    found = _describe(error.instance)
    value: Any = error.validator_value
    if error.validator == "type":
        kinds = value if isinstance(value, list) else [value]
        wanted = " or ".join(_EXPECTED_TYPE.get(str(kind), str(kind)) for kind in kinds)
        return f"expected {wanted}, found {found}"
    if error.validator == "enum":
        choices = [str(choice) for choice in value]
        return with_suggestion(
            f"expected one of {', '.join(choices)}, found {found}",
            str(error.instance),
            choices,
            "",
        )
    if error.validator == "pattern":
        hint = "a '<layer>.<table>' name in lower snake_case" if "\\." in value else value
        return f"expected {hint}, found {found}"
    if error.validator == "minLength":
        return f"expected a non-empty string, found {found}"
    if error.validator == "minItems":
        return f"expected at least {value} item(s), found {found}"
    if error.validator == "uniqueItems":
        return f"expected no repeated items, found {found}"
    if error.validator == "minimum":
        return f"expected a number >= {value}, found {found}"
    return f"expected {error.validator} {value!r}, found {found} ({error.message})"


def _describe(value: Any) -> str:
    """Name a value's kind, and show it when it is short."""
    kind = _KINDS.get(type(value), type(value).__name__)
    if isinstance(value, dict):
        return kind
    text = repr(value)
    return f"{kind} {text}" if len(text) <= 80 else f"{kind} {text[:77]}..."


def _build(document: Mapping[str, Any]) -> TableSpec:
    """Typed spec from a document that already passed the JSON Schema."""
    transformations = document.get("transformations") or {}
    checks = document.get("checks") or {}
    lookups = tuple(
        Lookup(
            name=item["name"],
            table=item["table"],
            on=(item["on"],) if isinstance(item["on"], str) else tuple(item["on"]),
        )
        for item in document.get("lookups") or []
    )
    expectations = tuple(
        Expectation(name=name, expression=expression, action=GROUP_ACTIONS[group])
        for group, rules in (document.get("expectations") or {}).items()
        for name, expression in (rules or {}).items()
    )
    return TableSpec(
        dataset=document["dataset"],
        layer=document["layer"],
        sources=tuple(document.get("sources") or ()),
        keys=tuple(document.get("keys") or ()),
        sequence_by=document.get("sequence_by"),
        quarantine_table=document.get("quarantine_table") or "",
        lookups=lookups,
        transformations=Transformations(
            select_exp=tuple(transformations.get("select_exp") or ()),
            where_clause=tuple(transformations.get("where_clause") or ()),
        ),
        expectations=expectations,
        checks=Checks(min_rows=checks.get("min_rows"), max_rows=checks.get("max_rows")),
        watch=_watch(document.get("watch") or {}),
        load_pattern=document.get("load_pattern"),
        build=_build_section(document.get("build") or {}),
        publish=_publish_section(document.get("publish")),
        display=_display_section(document.get("display") or {}),
    )


def _publish_section(document: Mapping[str, Any] | None) -> Publish | None:
    """The typed ``publish`` section; None when the table is not served."""
    return None if document is None else Publish(tuple(document["reconcile"]))


def _display_section(document: Mapping[str, Any]) -> Display:
    """The typed ``display`` section (every chart optional)."""
    line, histogram, top = document.get("line"), document.get("histogram"), document.get("top")
    return Display(
        line=None if line is None else LineChart(**line),
        histogram=None if histogram is None else Histogram(**histogram),
        top=None if top is None else TopRows(top["by"], tuple(top["columns"]), top["title"]),
    )


def _build_section(document: Mapping[str, Any]) -> Build:
    """The typed ``build`` section (every key optional here; the layer's needs are checked
    by ``_build_issues``)."""
    reference, usd_rates = document.get("reference"), document.get("usd_rates")
    return Build(
        transform=document.get("transform"),
        incremental=document.get("incremental"),
        columns=tuple(document.get("columns") or ()),
        extra_columns=tuple(document.get("extra_columns") or ()),
        tie_break=tuple(document.get("tie_break") or ()),
        keep_current_when_null=tuple(document.get("keep_current_when_null") or ()),
        skip_unchanged=document.get("skip_unchanged", False),
        full_loads=tuple(document.get("full_loads") or ()),
        persist=document.get("persist", True),
        grain=Grain(**(document.get("grain") or {})),
        reference=None if reference is None else Reference(**reference),
        usd_rates=None if usd_rates is None else UsdRates(**usd_rates),
    )


def _watch(document: Mapping[str, Any]) -> Watch:
    """The watchdog's settings; a ``volume`` mapping without keys takes every default."""
    volume = document.get("volume")
    return Watch(
        freshness_hours=document.get("freshness_hours"),
        volume=None if volume is None else VolumeWatch(**volume),
    )


def _line(tree: Node, path: list[str | int]) -> int:
    """The line a key path was written at (its nearest written parent when absent)."""
    return node_at(tree, path).line


def _place_issues(spec: TableSpec, tree: Node, spec_file: Path) -> list[BundleIssue]:
    """``<layer>/<table>.yml`` must hold ``dataset: <layer>.<table>`` and ``layer: <layer>``."""
    issues = []
    folder, table = spec_file.resolve().parent.name, spec_file.stem
    if spec.layer != folder:
        issues.append(
            BundleIssue(
                tree.file,
                _line(tree, ["layer"]),
                "layer",
                f"expected {folder!r} (the file is in the folder {folder}/), found {spec.layer!r}",
            )
        )
    expected_dataset = f"{folder}.{table}"
    if spec.dataset != expected_dataset:
        message = (
            f"expected {expected_dataset!r} (the file is {folder}/{table}.yml), "
            f"found {spec.dataset!r}"
        )
        issues.append(BundleIssue(tree.file, _line(tree, ["dataset"]), "dataset", message))
    volume = spec.watch.volume
    if volume is not None and volume.min_ratio > volume.max_ratio:
        issues.append(
            BundleIssue(
                tree.file,
                _line(tree, ["watch", "volume", "max_ratio"]),
                "watch.volume.max_ratio",
                f"expected max_ratio >= min_ratio ({volume.min_ratio}), found {volume.max_ratio}",
            )
        )
    bounds = spec.checks
    if (
        bounds.min_rows is not None
        and bounds.max_rows is not None
        and bounds.min_rows > bounds.max_rows
    ):
        issues.append(
            BundleIssue(
                tree.file,
                _line(tree, ["checks", "max_rows"]),
                "checks.max_rows",
                f"expected max_rows >= min_rows ({bounds.min_rows}), found {bounds.max_rows}",
            )
        )
    return issues


def _build_issues(spec: TableSpec, tree: Node) -> list[BundleIssue]:
    """What the layer's generic step needs from ``build``, and tables it names among sources."""
    build, issues = spec.build, []

    def issue(path: Sequence[str | int], message: str) -> None:
        issues.append(BundleIssue(tree.file, _line(tree, list(path)), ".".join(map(str, path)),
                                  message))

    if spec.layer == "bronze":
        try:
            spec.raw_source  # noqa: B018  # validates sources
        except SpecError as error:
            issue(["sources"], str(error).split(": ", 2)[-1])
        if spec.load_pattern is None:
            issue(["load_pattern"], "expected how the raw source lands (e.g. 'full', 'offsets'), "
                  "found none")
    if spec.layer == "silver":
        if not build.columns:
            issue(["build", "columns"], "expected the table's business columns, found none")
        if not spec.keys or spec.sequence_by is None:
            issue(["keys"], "expected keys and sequence_by (silver MERGEs the latest row per key)")
        if build.transform is None and len(spec.sources) != 1:
            issue(["build", "transform"], "expected a transform combining the sources "
                  f"{list(spec.sources)}, found none (only one source needs none)")
    if spec.layer != "silver" and build.skip_unchanged:
        issue(["build", "skip_unchanged"], "expected only on silver tables (rows a MERGE would "
              f"not change), found it on a {spec.layer} table")
    if spec.layer != "silver" and build.full_loads:
        issue(["build", "full_loads"], "expected only on silver tables (sources whose every "
              f"load a silver step compares with the one before), found it on a {spec.layer} table")
    unknown_loads = [source for source in build.full_loads if source not in spec.sources]
    if unknown_loads:
        issue(["build", "full_loads"], f"expected sources of the table {list(spec.sources)}, "
              f"found {unknown_loads}")
    if spec.layer != "gold" and build.incremental is not None:
        issue(["build", "incremental"], "expected only on gold tables (silver MERGEs the day's "
              f"rows already), found it on a {spec.layer} table")
    if spec.layer == "gold":
        if build.transform is None:
            issue(["build", "transform"], "expected the function building the table, found none")
        grain = build.grain
        if (grain.rows_per is None) == (grain.sums is None or grain.of is None):
            issue(["build", "grain"], "expected either rows_per, or sums and of, found "
                  f"{[key for key, value in vars(grain).items() if value is not None]}")
    named = [
        (["build", "grain", "rows_per"], build.grain.rows_per),
        (["build", "grain", "of"], build.grain.of),
        (["build", "reference", "table"], build.reference and build.reference.table),
        (["build", "usd_rates", "orders"], build.usd_rates and build.usd_rates.orders),
        (["build", "usd_rates", "rates"], build.usd_rates and build.usd_rates.rates),
    ]
    for path, table in named:
        if table and table not in spec.sources:
            issue(path, f"expected one of the sources {list(spec.sources)}, found {table!r}")
    return issues


def _rule_issues(tree: Node) -> list[BundleIssue]:
    """A rule name identifies its counts and ``_errors`` entries: one use per spec."""
    issues = []
    first_seen: dict[str, str] = {}
    groups = tree.get("expectations")
    for group, rules in (groups.value if groups and isinstance(groups.value, dict) else {}).items():
        for name, rule in (rules.value if isinstance(rules.value, dict) else {}).items():
            path = f"expectations.{group}.{name}"
            if name in first_seen:
                issues.append(
                    BundleIssue(
                        tree.file,
                        rule.line,
                        path,
                        f"expected a rule name used once per spec, found {name!r} again "
                        f"(first at {first_seen[name]}); rename one",
                    )
                )
            else:
                first_seen[name] = path
    return issues


def _sql_issues(tree: Node) -> list[BundleIssue]:
    """Every predicate and select expression must parse as one Spark SQL expression."""
    issues = []
    document = to_plain(tree)
    transformations = document.get("transformations") or {}
    for index, text in enumerate(transformations.get("select_exp") or []):
        path: list[str | int] = ["transformations", "select_exp", index]
        issues += _parse_issue(tree, path, text, "a Spark SQL select expression", alias_ok=True)
    for index, text in enumerate(transformations.get("where_clause") or []):
        path = ["transformations", "where_clause", index]
        issues += _parse_issue(tree, path, text, "a Spark SQL predicate", alias_ok=False)
    for group, rules in (document.get("expectations") or {}).items():
        for name, text in (rules or {}).items():
            path = ["expectations", group, name]
            issues += _parse_issue(tree, path, text, "a Spark SQL predicate", alias_ok=False)
    return issues


def _balanced(text: str) -> bool:
    """Whether every bracket closes: sqlglot forgives a missing ``)``, Spark does not."""
    depth = 0
    for token in sqlglot.Dialect.get_or_raise("spark").tokenize(text):
        if token.token_type in _OPENING:
            depth += 1
        elif token.token_type in _CLOSING:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _parse_issue(
    tree: Node, path: list[str | int], text: str, wanted: str, *, alias_ok: bool
) -> list[BundleIssue]:
    """An issue when ``text`` is not one Spark SQL expression (an alias only where allowed)."""
    problem = ""
    try:
        parsed = sqlglot.parse_one(text, read="spark")
    except SqlglotError as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    else:
        if not _balanced(text):
            problem = "unbalanced parentheses or brackets"
        elif isinstance(parsed, _STATEMENTS):
            problem = "a statement, not an expression"
        elif isinstance(parsed, exp.Alias) and not alias_ok:
            problem = "an alias (AS) is not allowed in a predicate"
    if not problem:
        return []
    key_path = ""
    for part in path:
        key_path = child_path(key_path, part)
    message = f"expected {wanted}, found {text!r} (does not parse: {problem})"
    return [BundleIssue(tree.file, _line(tree, path), key_path, message)]

