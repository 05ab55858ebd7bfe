"""``medallion``: run jobs, validate the bundle, query tables, manage local compute and sources."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, RenderableType
from rich.segment import Segments
from rich.table import Table

from medallion.lakehouse.errors import ConfigError, MedallionError
from medallion.lakehouse.pipelines import StepResult
from medallion.lakehouse.storage import StorageRoot
from medallion.platform import compute

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

    from medallion.platform.bundle import Bundle

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
bundle_app = typer.Typer(
    no_args_is_help=True, help="Check the bundle offline; print its grants."
)
jobs_app = typer.Typer(no_args_is_help=True, help="Run the bundle's jobs locally.")
compute_app = typer.Typer(no_args_is_help=True, help="The warm local Spark (Connect) server.")
devstack_app = typer.Typer(no_args_is_help=True, help="Local stand-ins of the source systems.")
app.add_typer(bundle_app, name="bundle")
app.add_typer(jobs_app, name="jobs")
app.add_typer(compute_app, name="compute")
app.add_typer(devstack_app, name="devstack")

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

TargetOpt = Annotated[str | None, typer.Option("--target", "-t", help="bundle target")]
VarOpt = Annotated[list[str] | None, typer.Option("--var", help="bundle variable k=v")]
RootOpt = Annotated[
    Path | None, typer.Option("--storage-root", help="lakehouse root (default: the bundle's)")
]
BundleOpt = Annotated[Path, typer.Option("--bundle-root", help="folder with databricks.yml")]


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} {item!r}: expected KEY=VALUE")
        pairs[key] = value
    return pairs


def _fail(error: MedallionError) -> typer.Exit:
    err.print(f"[red]error:[/red] {error}")
    return typer.Exit(code=2)


def _print_uncut(renderable: RenderableType) -> None:
    """Print ``renderable`` as wide as it is: a narrow terminal wraps its lines, cuts none."""
    width = console.measure(renderable, options=console.options.update(width=10_000)).maximum
    lines = console.render_lines(
        renderable, console.options.update(width=max(width, 1)), pad=False, new_lines=True
    )
    console.print(Segments([segment for line in lines for segment in line]), crop=False)


def _storage_root(
    root: Path | None,
    bundle_root: Path,
    target: str | None = None,
    variables: list[str] | None = None,
) -> StorageRoot:
    """The storage root given on the command line, else the bundle's ``storage_root``."""
    if root is not None:
        return StorageRoot(root)
    from medallion.platform.bundle import load_bundle

    bundle = load_bundle(bundle_root, target, _pairs(variables, "--var"))
    return StorageRoot(str(bundle.variables["storage_root"]))


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the lakehouse catalog")],
    output_format: Annotated[str, typer.Option("--format", "-f", help="table|json|csv")] = "table",
    limit: Annotated[int, typer.Option(help="most rows to print")] = 1000,
    role: Annotated[
        str | None,
        typer.Option(
            envvar="MEDALLION_ROLE",
            help="read as this role (bundles/roles.yml): a table it may not read is refused",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="on an error in the query, print Spark's full error")
    ] = False,
    storage_root: RootOpt = None,
    target: TargetOpt = None,
    var: VarOpt = None,
    bundle_root: BundleOpt = Path(),
) -> None:
    """Run SQL on the local catalog (through the warm server when one is up).

    An error in the query is one line, exit 1: an unknown table and the
    tables its schema has, an unknown column and the ones Spark suggests,
    where the syntax breaks (--debug: Spark's full error).

    With no warm server the query starts Spark for itself (~10-20 s), and a
    note on stderr names the command that starts one (medallion compute up)
    for sub-second queries. It does not start one: that costs as long once,
    and leaves a 2 GB JVM running that nobody asked for.
    """
    import shlex
    import traceback

    from rich.markup import escape

    from medallion.lakehouse.errors import SqlError

    if output_format not in {"table", "json", "csv"}:
        raise typer.BadParameter("--format: expected table, json or csv")
    try:
        from medallion.platform.roles import declared_roles
        from medallion.platform.sql import run_sql

        roles = declared_roles(bundle_root.resolve(), target) if role else None
        root = _storage_root(storage_root, bundle_root, target, var)
        default_root = storage_root is None and not target and not var and bundle_root == Path()
        compute_up = "medallion compute up" + (
            "" if default_root else f" --storage-root {shlex.quote(str(root))}"
        )
        columns, rows = run_sql(
            query, root, limit=limit, role=role or None, roles=roles,
            on_local_start=lambda: err.print(
                f"note: no warm compute, so Spark starts for this query (~10-20 s); "
                f"`{compute_up}` keeps one up for sub-second queries", markup=False
            ),
        )
    except SqlError as error:  # the query is wrong: exit 1, as a failed run (2 is for setup)
        if debug:
            traceback.print_exception(error, file=sys.stderr)
        err.print(f"[red]error:[/red] {escape(str(error))}", emoji=False)
        raise typer.Exit(code=1) from error
    except MedallionError as error:
        raise _fail(error) from error
    if output_format == "json":
        console.print_json(
            json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str)
        )
    elif output_format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        console.print(table)


@bundle_app.command("validate")
def bundle_validate(
    target: TargetOpt = None, var: VarOpt = None, bundle_root: BundleOpt = Path()
) -> None:
    """Check every bundle file with the official resource models and our semantic rules."""
    from medallion.platform.bundle import validate_bundle

    try:
        issues = validate_bundle(bundle_root.resolve(), target, variables=_pairs(var, "--var"))
    except MedallionError as error:
        raise _fail(error) from error
    for issue in issues:
        color = {"error": "red", "warning": "yellow"}.get(issue.severity, "dim")
        console.print(f"[{color}]{issue.severity}[/{color}]: {issue}")
    errors = [issue for issue in issues if issue.severity == "error"]
    if errors:
        err.print(f"[red]{len(errors)} error(s)[/red]")
        raise typer.Exit(code=1)
    console.print("[green]bundle is valid[/green]")


@bundle_app.command("grants")
def bundle_grants(
    target: TargetOpt = None, var: VarOpt = None, bundle_root: BundleOpt = Path()
) -> None:
    """Print the roles' Unity Catalog GRANT statements for a target (bundles/roles.yml)."""
    from medallion.platform.bundle import load_bundle
    from medallion.platform.roles import roles_from_bundle

    try:
        bundle = load_bundle(bundle_root.resolve(), target, _pairs(var, "--var"))
        statements = roles_from_bundle(bundle).grant_statements()
    except MedallionError as error:
        raise _fail(error) from error
    for statement in statements:
        console.print(f"{statement};", markup=False)


@jobs_app.command("list")
def jobs_list(target: TargetOpt = None, bundle_root: BundleOpt = Path()) -> None:
    """The bundle's jobs and their tasks."""
    from medallion.platform.bundle import load_bundle

    try:
        bundle = load_bundle(bundle_root.resolve(), target)
    except MedallionError as error:
        raise _fail(error) from error
    for key, job in bundle.jobs.items():
        tasks = ", ".join(task["task_key"] for task in job.get("tasks", []))
        console.print(f"[bold]{key}[/bold]: {tasks}")


@jobs_app.command("status")
def jobs_status(
    run_id: Annotated[
        int | None,
        typer.Argument(help="workspace targets: the run to show (as `jobs run` printed it)"),
    ] = None,
    target: TargetOpt = None,
    runs_root: Annotated[Path | None, typer.Option(help="where executed notebooks go")] = None,
    last: Annotated[int, typer.Option(help="runs shown per job")] = 5,
    bundle_root: BundleOpt = Path(),
) -> None:
    """Each job's latest runs; a run whose runner died is marked INTERNAL_ERROR and notified.

    On a workspace target (`-t dev`, `-t prod`) it shows one run of a deployed job and its
    tasks, and exits 1 when that run ended without passing (0 while it still runs).
    """
    from medallion.platform.bundle import load_bundle
    from medallion.platform.jobs.engine import reap_dead_runs, run_records
    from medallion.platform.jobs.model import parse_job
    from medallion.platform.runs.recorder import RunRecorder

    root = bundle_root.resolve()
    runs = (runs_root or root / "runs").resolve()
    try:
        bundle = load_bundle(root, target)
        if bundle.target != LOCAL_TARGET:
            _workspace_run_status(bundle, run_id)
            return
        if run_id is not None:
            raise ConfigError(
                f"run {run_id}: a run id is looked up on a workspace target (-t dev, -t prod); "
                "locally `jobs status` lists each job's latest runs"
            )
        recorder = RunRecorder.for_bundle(bundle)
        for key, raw in bundle.jobs.items():
            for dead in reap_dead_runs(parse_job(key, raw), runs):
                recorder.job_finished(dead)
                console.print(f"[red]{key} run {dead.run_id}: {dead.state}[/red]: "
                              f"{dead.state_message}")
    except MedallionError as error:
        raise _fail(error) from error
    for key in bundle.jobs:
        for path in run_records(runs / key)[-last:]:
            record = json.loads(path.read_text())
            took = float(record.get("duration_seconds") or 0)
            console.print(f"{key} {record['run_id']} {record['state']} started "
                          f"{record.get('started_at', '')} ({took:.0f} s)")


def _workspace_run_status(bundle: Bundle, run_id: int | None) -> None:
    """Print one run of a deployed job; exit 1 when it ended without passing."""
    from medallion.platform.jobs.remote import deployed_run

    if run_id is None:
        raise ConfigError(
            f"jobs status -t {bundle.target}: expected the id of a run in the workspace "
            "(`medallion jobs status <run_id> -t <target>`), found none"
        )
    run = deployed_run(_workspace_client(bundle), run_id)
    for task in run.tasks:
        console.print(f"  {task}")
    console.print(f"run {run.run_id}: {run.result or run.life_cycle} ({run.url})")
    if run.finished and not run.passed:
        raise typer.Exit(code=1)


def _workspace_client(bundle: Bundle) -> WorkspaceClient:
    """A client for the target's workspace: its host if the bundle names one, and the SDK's own
    authentication (environment, ~/.databrickscfg)."""
    from databricks.sdk import WorkspaceClient

    host = (bundle.config.get("workspace") or {}).get("host")
    return WorkspaceClient(host=host) if host else WorkspaceClient()


@jobs_app.command("run")
def jobs_run(
    job_key: Annotated[str, typer.Argument(help="job key under resources.jobs")],
    target: TargetOpt = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="job parameter k=v")
    ] = None,
    var: VarOpt = None,
    compute_mode: Annotated[
        str, typer.Option("--compute", help="warm (shared local server), cold, or sc://host:port")
    ] = "warm",
    runs_root: Annotated[Path | None, typer.Option(help="where executed notebooks go")] = None,
    max_parallel: Annotated[int, typer.Option(help="tasks run at once")] = 5,
    kernel_pool: Annotated[int, typer.Option(help="most kernels started ahead (0: on demand)")] = 5,
    only: Annotated[
        str | None,
        typer.Option(help="run only these tasks (comma-separated keys), as run-now's 'only'"),
    ] = None,
    watch_timeout: Annotated[
        float | None,
        typer.Option(help="workspace targets: stop watching after this many seconds "
                          "(default: the job's timeout_seconds)"),
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option(help="workspace targets: seconds between looks at the run")
    ] = 5.0,
    bundle_root: BundleOpt = Path(),
) -> None:
    """Run a job with the Jobs service's semantics; exit 1 if the run failed.

    On the `local` target the local runner runs it here. On a workspace target (`-t dev`,
    `-t prod`) the job deployed there runs (databricks-sdk, `jobs.run_now`); each task's state is
    printed as it changes, with the same exit code.
    """
    from medallion.platform.bundle import load_bundle
    from medallion.platform.jobs import RunOptions, run_job
    from medallion.platform.jobs.engine import ObserverGroup
    from medallion.platform.jobs.model import parse_job
    from medallion.platform.jobs.progress import ConsoleProgress
    from medallion.platform.runs.recorder import RunRecorder

    root = bundle_root.resolve()
    try:
        bundle = load_bundle(root, target, _pairs(var, "--var"))
        if job_key not in bundle.jobs:
            raise typer.BadParameter(
                f"no job {job_key!r} in the bundle; jobs: {', '.join(sorted(bundle.jobs))}"
            )
        if bundle.target != LOCAL_TARGET:  # a workspace target: run what is deployed there
            _run_in_workspace(
                bundle, job_key, _pairs(param, "--param"), watch_timeout, poll_seconds
            )
            return
        jobs = {key: parse_job(key, raw) for key, raw in bundle.jobs.items()}
        job = jobs[job_key]
        if only is not None:
            job = job.only([key.strip() for key in only.split(",") if key.strip()])
        recorder = RunRecorder.for_bundle(bundle)
        options = RunOptions(
            runs_root=(runs_root or root / "runs").resolve(),
            compute=compute_mode,
            kernel_pool=kernel_pool,
            max_parallel=max_parallel,
            observer=ObserverGroup(ConsoleProgress(console), recorder),
            jobs=jobs,
        )
        result = run_job(job, _pairs(param, "--param"), options)
    except MedallionError as error:
        raise _fail(error) from error
    if result.run_id in recorder.reports:
        console.print(f"report: {recorder.reports[result.run_id]}", markup=False)
    if result.exit_code:
        err.print(result.failure_message())
    raise typer.Exit(code=result.exit_code)


LOCAL_TARGET = "local"  # the bundle target the local runner runs; every other is a workspace
DEFAULT_WATCH_SECONDS = 7200.0


def _run_in_workspace(
    bundle: Bundle,
    job_key: str,
    parameters: dict[str, str],
    watch_timeout: float | None,
    poll_seconds: float,
) -> None:
    """Run the deployed job on the target's workspace and print its tasks as they change."""
    from medallion.lakehouse.errors import JobRunFailed
    from medallion.platform.jobs.remote import RemoteRun, TaskState, run_deployed_job

    raw = bundle.jobs[job_key]
    client = _workspace_client(bundle)

    def show(run: RemoteRun, changed: tuple[TaskState, ...]) -> None:
        for task in changed:
            console.print(f"  {task}")
        if run.finished:
            console.print(f"run {run.run_id}: {run.result or run.life_cycle} ({run.url})")

    timeout = watch_timeout or float(raw.get("timeout_seconds") or DEFAULT_WATCH_SECONDS)
    console.print(f"{job_key} on {client.config.host} ({bundle.target})")
    try:
        run_deployed_job(client, str(raw.get("name", job_key)), parameters,
                         timeout_seconds=timeout, poll_seconds=poll_seconds, on_change=show)
    except JobRunFailed as failed:  # as a failed local run: exit 1 (2 is for errors)
        err.print(str(failed))
        raise typer.Exit(code=1) from failed


@compute_app.command("up")
def compute_up(storage_root: RootOpt = None, bundle_root: BundleOpt = Path()) -> None:
    """Start the warm Spark Connect server and keep it up across runs."""
    server = compute.pin_server(_storage_root(storage_root, bundle_root))
    console.print(f"compute up: {server.url} (pid {server.pid})")


@compute_app.command("down")
def compute_down(storage_root: RootOpt = None, bundle_root: BundleOpt = Path()) -> None:
    """Stop the warm server."""
    stopped = compute.unpin_server(_storage_root(storage_root, bundle_root))
    console.print("compute stopped" if stopped else "compute was not running")


@compute_app.command("status")
def compute_status(storage_root: RootOpt = None, bundle_root: BundleOpt = Path()) -> None:
    """Whether the warm server is up, where, and who holds it (dead runners' leases dropped)."""
    root = _storage_root(storage_root, bundle_root)
    server = compute.find_server(root)
    if server is None:
        console.print("compute down")
        return
    with compute.startup_lock(root):
        holders = compute.live_leases(root)
    console.print(f"compute up: {server.url} (pid {server.pid}); held by "
                  f"{', '.join(holders) or 'no live lease (it stops by itself shortly)'}")


@devstack_app.command("up")
def devstack_up(storage_root: RootOpt = None, bundle_root: BundleOpt = Path()) -> None:
    """Start the source stand-ins (idempotent)."""
    from medallion.platform.devstack import stack

    for service in stack.up(_storage_root(storage_root, bundle_root)):
        console.print(f"{service.name}: up at {service.url} (pid {service.pid})")


@devstack_app.command("down")
def devstack_down(storage_root: RootOpt = None, bundle_root: BundleOpt = Path()) -> None:
    """Stop the source stand-ins."""
    from medallion.platform.devstack import stack

    stopped = stack.down(_storage_root(storage_root, bundle_root))
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@devstack_app.command("status")
def devstack_status(storage_root: RootOpt = None, bundle_root: BundleOpt = Path()) -> None:
    """Which stand-ins answer, and where."""
    from medallion.platform.devstack import stack

    for service in stack.status(_storage_root(storage_root, bundle_root)):
        state = f"up at {service.url}" if service.running else "down"
        console.print(f"{service.name}: {state}")


@app.command()
def generate(
    days: Annotated[int, typer.Option(help="business days of data")] = 7,
    scale: Annotated[float, typer.Option(help="1.0 = ~1k customers, 5k orders, 20k events")] = 1.0,
    seed: Annotated[int, typer.Option(help="same seed, same data")] = 42,
    start_date: Annotated[str, typer.Option(help="first business day")] = "2026-11-01",
    load: Annotated[bool, typer.Option(help="start the stand-ins and load every day")] = True,
    storage_root: RootOpt = None,
    bundle_root: BundleOpt = Path(),
) -> None:
    """Generate deterministic source data (with known dirt) and load it into the stand-ins."""
    from medallion.platform.devstack import stack
    from medallion.platform.generate import GeneratorConfig, write_generated
    from medallion.platform.generate import generate as generate_data
    from medallion.platform.generate.load import load_days

    try:
        root = _storage_root(storage_root, bundle_root)
        config = GeneratorConfig(
            seed=seed, scale=scale, days=days, start_date=date.fromisoformat(start_date)
        )
        data = generate_data(config)
        out = write_generated(data, root.system / "generate" / "data")
        summary = data.summary()
        table = Table("source", "clean", "dirty", title=f"generated → {out}", title_justify="left")
        for source, clean in sorted(summary.clean.items()):
            dirty = sum(n for (name, _), n in summary.dirty.items() if name == source)
            table.add_row(source, str(clean), str(dirty))
        console.print(table)
        if not load:
            return
        stack.up(root)
        day_list = [config.start_date + timedelta(days=n) for n in range(days)]
        loads = Table(
            "day",
            "snowflake",
            "postgres",
            "crm",
            "kafka",
            title="loaded into the stand-ins",
            title_justify="left",
        )
        for report in load_days(root, data, day_list):
            loads.add_row(report.day.isoformat(), *(str(system.rows) for system in report.systems))
        console.print(loads)
    except MedallionError as error:
        raise _fail(error) from error


@app.command()
def lab(
    storage_root: RootOpt = None,
    port: Annotated[int, typer.Option(help="JupyterLab's port")] = 8888,
    browser: Annotated[bool, typer.Option(help="open a browser tab")] = True,
    bundle_root: BundleOpt = Path(),
) -> None:
    """JupyterLab on notebooks/, every kernel attached to the warm Spark driver."""
    from medallion.platform.lab import run_lab

    root = bundle_root.resolve()
    code = run_lab(_storage_root(storage_root, root), root / "notebooks", port, browser,
                   announce=lambda line: console.print(line, markup=False))
    raise typer.Exit(code=code)


@app.command()
def demo(
    days: Annotated[int, typer.Option(help="business days to run, ending at --end-date")] = 3,
    end_date: Annotated[
        str | None, typer.Option(help="last business date (default yesterday)")
    ] = None,
    scale: Annotated[float, typer.Option(help="data volume; 1.0 = ~5k orders, 20k events a day")
                     ] = 1.0,
    seed: Annotated[int, typer.Option(help="same seed, same data")] = 42,
    keep_stack: Annotated[bool, typer.Option(help="leave the source stand-ins running")] = False,
    bundle_root: BundleOpt = Path(),
) -> None:
    """Generate data, start the five sources, run both daily jobs day by day, print the counts."""
    from medallion.platform.demo import run_demo

    last = date.fromisoformat(end_date) if end_date else date.today() - timedelta(days=1)
    try:
        code = run_demo(
            bundle_root.resolve(),
            [last - timedelta(days=n) for n in reversed(range(days))],
            console,
            scale=scale,
            seed=seed,
            keep_stack=keep_stack,
        )
    except MedallionError as error:
        raise _fail(error) from error
    raise typer.Exit(code=code)


@app.command()
def backfill(
    entity: Annotated[str, typer.Argument(help="bronze table, e.g. customer_behavior")],
    from_date: Annotated[str, typer.Option("--from", help="first load date, YYYY-MM-DD")],
    to_date: Annotated[str, typer.Option("--to", help="last load date, YYYY-MM-DD")],
    storage_root: RootOpt = None,
    target: TargetOpt = None,
    var: VarOpt = None,
    bundle_root: BundleOpt = Path(),
) -> None:
    """Reprocess an entity's raw loads over a date range with the current contracts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from medallion.lakehouse.environment import Environment
    from medallion.lakehouse.pipelines.backfill import backfill as run_backfill
    from medallion.lakehouse.pipelines.backfill import dates_between
    from medallion.lakehouse.pipelines.gold import pii_hash_salt
    from medallion.lakehouse.tables import Lakehouse
    from medallion.platform.sql import open_session

    try:
        start, end = date.fromisoformat(from_date), date.fromisoformat(to_date)
        days = len(list(dates_between(start, end)))
        root = _storage_root(storage_root, bundle_root, target, var)
        spark = open_session(root)
    except ValueError as error:
        raise typer.BadParameter(f"--from/--to: expected YYYY-MM-DD dates ({error})") from error
    except MedallionError as error:
        raise _fail(error) from error
    run_id = f"backfill-{entity}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    table = Table("date", "step", "rows in", "written", "quarantined", "dropped")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        bar = progress.add_task(f"backfill {entity}", total=days)
        seen: set[date] = set()

        def on_step(day: date, target_table: str, result: StepResult | None) -> None:
            if day not in seen and day <= end:
                seen.add(day)
                progress.update(bar, completed=len(seen), description=f"backfill {entity} {day}")
            if result is None:
                table.add_row(str(day), target_table, "no raw load", "", "", "")
                return
            dropped = sum(result.rows_dropped.values())
            table.add_row(str(day), target_table, f"{result.rows_in:,}",
                          f"{result.rows_written:,}", f"{result.rows_quarantined:,}",
                          f"{dropped:,}")

        try:
            environment = Environment.resolve(root)
            lakehouse = Lakehouse.in_environment(spark, environment)
            outcome = run_backfill(lakehouse, entity, start, end, run_id=run_id,
                                   salt=pii_hash_salt(root, environment.secrets), on_step=on_step)
        except MedallionError as error:
            raise _fail(error) from error
        finally:
            spark.stop()
    console.print(table)
    console.print(f"{entity}: {days - len(outcome.missing)} of {days} dates reprocessed "
                  f"(run id {run_id})")


state_app = typer.Typer(no_args_is_help=True, help="Raw ingestion state: inspect, reset.")
app.add_typer(state_app, name="state")


@state_app.command("show")
def state_show(
    output_format: Annotated[str, typer.Option("--format", "-f", help="table|json")] = "table",
    storage_root: RootOpt = None,
    bundle_root: BundleOpt = Path(),
) -> None:
    """Each raw source's loads and the position its next run starts from."""
    from medallion.lakehouse.state import show_state

    if output_format not in {"table", "json"}:
        raise typer.BadParameter("--format: expected table or json")
    try:
        states = show_state(_storage_root(storage_root, bundle_root))
    except MedallionError as error:
        raise _fail(error) from error
    if output_format == "json":
        console.print_json(json.dumps([state.as_dict() for state in states]))
        return
    table = Table("source", "loads", "load dates", "latest rows", "next start", "from")
    for column in table.columns:
        column.overflow = "fold"  # never hide part of a position behind an ellipsis
    for state in states:
        incomplete = ", ".join(load_dt.isoformat() for load_dt in state.incomplete)
        table.add_row(
            "/".join(filter(None, (state.source, state.entity))),
            str(state.loads),
            f"{state.first_load} .. {state.latest_load}" if state.loads else "-",
            "-" if state.latest_rows is None else str(state.latest_rows),
            "-" if state.next_start is None else json.dumps(state.next_start),
            state.next_start_from + (f"; incomplete: {incomplete}" if incomplete else ""),
        )
    console.print(table)


@state_app.command("reset")
def state_reset(
    source: Annotated[str, typer.Argument(help="crm, redshift, kafka, snowflake or fx_rates")],
    from_date: Annotated[
        str | None, typer.Option("--from", help="first load_dt to move, YYYY-MM-DD (default: all)")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    storage_root: RootOpt = None,
    bundle_root: BundleOpt = Path(),
) -> None:
    """Move a source's loads aside (nothing is deleted) so its next run re-extracts them."""
    from medallion.lakehouse.state import find_source, reset_state, state_dir

    try:
        first = None if from_date is None else date.fromisoformat(from_date)
    except ValueError:
        raise typer.BadParameter(f"--from {from_date!r}: expected YYYY-MM-DD") from None
    try:
        find_source(source)
        root = _storage_root(storage_root, bundle_root)
        which = "every load" if first is None else f"every load with load_dt >= {first}"
        if not yes:
            typer.confirm(f"Move {which} of {source} to {state_dir(root) / 'resets'}?", abort=True)
        result = reset_state(root, source, from_date=first)
    except MedallionError as error:
        raise _fail(error) from error
    if not result.moved:
        console.print(f"{source}: nothing to move ({which} of {root}: none)", markup=False)
        return
    moved = ", ".join(load_dt.isoformat() for load_dt in result.moved)
    console.print(f"{source}: moved {moved} to {result.destination}", markup=False)
    for label, state in (("before", result.before), ("after", result.after)):
        console.print(
            f"next start {label}: {json.dumps(state.next_start)} ({state.next_start_from})",
            markup=False,
        )
    if result.mark_before != result.mark_after:
        mark = json.dumps(result.mark_after)
        mark = "removed" if result.mark_after is None else f"rewound to {mark}"
        console.print(f"redshift mark file: {mark}", markup=False)


lineage_app = typer.Typer(no_args_is_help=True, help="OpenLineage events: upstream graphs.")
app.add_typer(lineage_app, name="lineage")


@lineage_app.command("show")
def lineage_show(
    table: Annotated[str, typer.Argument(help="dataset, e.g. gold.fact_customer_360")],
    columns: Annotated[
        bool, typer.Option("--columns", help="also print the table's column lineage")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="also draw the graph to FILE.svg or .png")
    ] = None,
    storage_root: RootOpt = None,
    target: TargetOpt = None,
    var: VarOpt = None,
    bundle_root: BundleOpt = Path(),
) -> None:
    """A table's upstream lineage, from each job's latest COMPLETE run back to the sources."""
    from medallion.lakehouse.lineage.graph import read_lineage
    from medallion.lakehouse.lineage.picture import write_picture
    from medallion.lakehouse.lineage.tree import column_lines, upstream_tree

    try:
        graph, skipped = read_lineage(_storage_root(storage_root, bundle_root, target, var))
        dataset = graph.find(table)
        upstream = graph.upstream(dataset)
        if output is not None:
            write_picture(upstream, dataset, output)
    except MedallionError as error:
        raise _fail(error) from error
    for where in skipped:
        err.print(f"note: skipped {where}, a last line not yet complete", markup=False)
    _print_uncut(upstream_tree(upstream, dataset))
    if columns:
        lineage = upstream.column_lineage(dataset)
        console.print()
        if lineage is None:
            console.print(f"no column lineage recorded for {table}", markup=False)
        else:
            console.print(f"column lineage of {table}:", markup=False)
        for line in column_lines(upstream, lineage or ()):
            console.print(f"  {line}", markup=False)
    if output is not None:
        console.print(f"wrote {output}", markup=False)


@app.command("report")
def report(
    run_id: Annotated[str, typer.Argument(help="a run id as `jobs status` lists it, or latest")]
    = "latest",
    runs_root: Annotated[Path | None, typer.Option(help="where executed notebooks go")] = None,
    bundle_root: BundleOpt = Path(),
) -> None:
    """The path of a job run's report.html (tasks, DQ, lineage, its notebooks as HTML)."""
    from medallion.platform.runs.report import find_report

    try:
        path = find_report((runs_root or bundle_root.resolve() / "runs").resolve(), run_id)
    except MedallionError as error:
        raise _fail(error) from error
    console.print(str(path), markup=False)


dlt_meta_app = typer.Typer(
    no_args_is_help=True, help="dlt-meta onboarding (Lakeflow pipelines) from config/dq."
)
app.add_typer(dlt_meta_app, name="dlt-meta")


@dlt_meta_app.command("onboard")
def dlt_meta_onboard(
    catalog: Annotated[
        str | None,
        typer.Option(help="Unity Catalog catalog (default: the bundle's `catalog` for --env)"),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="folder to write the files to")
    ] = Path("build/dlt_meta"),
    env: Annotated[
        str, typer.Option(help="dlt-meta env (field suffix): the bundle target deployed to")
    ] = "dev",
    storage_root: Annotated[
        str | None,
        typer.Option(help="where raw/ and, once copied, dlt_meta/ are read "
                          "(default: /Volumes/<catalog>/lakehouse/files)"),
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="fail when a spec feature has no dlt-meta equivalent")
    ] = False,
    bundle_root: BundleOpt = Path(),
) -> None:
    """Write dlt-meta's onboarding file, DQE, transformation and schema files from config/dq."""
    from medallion.lakehouse.dltmeta import DltMetaTarget, build_onboarding, write_onboarding
    from medallion.lakehouse.quality.spec import load_specs

    try:
        if catalog is None:
            from medallion.platform.bundle import load_bundle

            catalog = str(load_bundle(bundle_root.resolve(), env).variables["catalog"])
        target = DltMetaTarget(catalog=catalog, env=env, storage_root=storage_root or "")
        onboarding = build_onboarding(load_specs().values(), target, strict=strict)
        written = write_onboarding(onboarding, output)
    except MedallionError as error:
        raise _fail(error) from error
    console.print(f"wrote {len(written)} files to {output} ({len(onboarding.rows)} dataflows); "
                  f"onboarding reads them from {target.files_root}", markup=False)
    for item in onboarding.left_out:
        console.print(f"left out: {item}", markup=False)


def main() -> None:
    """Entry point for ``python -m medallion``."""
    app()
