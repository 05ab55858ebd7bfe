"""A progress display for job runs: one line per task event and per notification, a summary
table at the end."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from medallion.platform.jobs.engine import JobRunResult, RunObserver, TaskRun
from medallion.platform.jobs.model import JobSpec
from medallion.platform.jobs.notifications import Notification

_STYLE = {
    "SUCCESS": ("✔", "green"), "FAILED": ("✖", "red"), "TIMEDOUT": ("⏱", "red"),
    "EXCLUDED": ("↷", "yellow"), "UPSTREAM_FAILED": ("↯", "red"), "CANCELED": ("■", "red"),
}


class ConsoleProgress(RunObserver):
    """Prints tasks as they start and finish, and the run's summary."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self._started = time.monotonic()
        self._total = 0
        self._depth = 0  # a run_job_task runs a job inside a job: one clock for the outer run

    def _clock(self) -> str:
        return f"[dim]{time.monotonic() - self._started:7.1f}s[/dim]"

    def job_queued(self, job: JobSpec, holder: str) -> None:
        """Say whom the run waits for, and since when (the holder's start)."""
        self.console.print(f"[yellow]⧗ job {job.key} is queued[/yellow]: another run of it "
                           f"holds its lock, {escape(holder)}; this run starts when it ends")

    def job_started(self, job: JobSpec, run_id: str, run_dir: Path,
                    parameters: Mapping[str, str]) -> None:
        """Announce the run and where its notebooks go."""
        if self._depth == 0:
            self._started = time.monotonic()
        self._depth += 1
        self._total = len(job.tasks)
        self.console.print(f"[bold]▶ job {job.key}[/bold] run {run_id} "
                           f"({self._total} tasks) → {run_dir}")

    def task_started(self, task_key: str, attempt: int) -> None:
        """A task (or a retry of it) began."""
        retry = f" [yellow](attempt {attempt})[/yellow]" if attempt > 1 else ""
        self.console.print(f"{self._clock()}   ▷ {task_key} started{retry}")

    def task_finished(self, run: TaskRun) -> None:
        """A task reached its final state."""
        mark, color = _STYLE.get(run.state, ("?", "white"))
        detail = ""
        if run.condition_result is not None:
            detail = f" → {run.condition_result}"
        elif run.state in {"FAILED", "TIMEDOUT"}:
            detail = f": {escape(run.error or '')}"
        elif run.reason:
            detail = f": {escape(run.reason)}"
        took = f" in {run.duration_seconds:.1f}s" if run.attempts else ""
        self.console.print(f"{self._clock()}   [{color}]{mark} {run.task_key} "
                           f"{run.state.lower()}{took}[/{color}]{detail}")

    def notification_sent(self, notification: Notification) -> None:
        """Who was notified of what."""
        to = [*notification.recipients, *(f"webhook {i}" for i in notification.webhook_ids)]
        self.console.print(f"{self._clock()}   [cyan]✉ {notification.event.value}[/cyan] → "
                           f"{escape(', '.join(to))}: {escape(notification.subject)}")

    def job_finished(self, result: JobRunResult) -> None:
        """The summary table and the run's outcome."""
        self._depth = max(self._depth - 1, 0)
        table = Table(title=f"{result.job_key} · run {result.run_id}", title_justify="left")
        for column in ("task", "state", "attempts", "seconds", "notebook"):
            table.add_column(column)
        for run in result.tasks.values():
            notebook = Path(run.notebook_output).name if run.notebook_output else ""
            table.add_row(run.task_key, run.state, str(run.attempts),
                          f"{run.duration_seconds:.1f}", notebook)
        self.console.print(table)
        for breach in result.health_breaches:
            self.console.print(f"[yellow]health rule breached: {breach}[/yellow]")
        color = "green" if result.exit_code == 0 else "red"
        self.console.print(f"[bold {color}]{result.state}[/bold {color}] in "
                           f"{result.duration_seconds:.1f}s · notebooks in {result.run_dir}")
