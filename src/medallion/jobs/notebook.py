"""Execute one notebook task attempt with papermill on a pooled kernel, with a timeout."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError

from medallion.credentials import local_secret_values, redact, stored_local_secrets
from medallion.jobs.cpu import cpu_delta, process_cpu_seconds
from medallion.jobs.kernels import KernelPool
from medallion.jobs.notifications import is_secret_name
from medallion.runtime import TaskContext

# Job parameters are pushed down to every task, so a notebook that does not declare one of them
# is normal here, not worth papermill's warning.
logging.getLogger("papermill").setLevel(logging.ERROR)


@dataclass(frozen=True)
class AttemptOutcome:
    """How one attempt ended: ``SUCCESS``, ``FAILED`` or ``TIMEDOUT``, and why."""

    state: str
    error: str | None = None
    error_class: str | None = None  # the exception's class, when the notebook raised
    error_message: str | None = None  # its whole message (``error`` keeps the last line)
    cpu_seconds: float = 0.0  # the kernel's (and its child processes') CPU time for the attempt


def _source_cell_number(executed: Path, cell_index: int) -> int:
    """The failing cell's 1-based position in the source notebook (without papermill's cell)."""
    try:
        cells = nbformat.read(executed, as_version=4).cells  # type: ignore[no-untyped-call]
    except (OSError, ValueError):
        return cell_index + 1
    # papermill puts an error banner on top of a failed notebook; its cell_index predates it.
    cells = [c for c in cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    injected = sum(
        1 for cell in cells[:cell_index] if "injected-parameters" in cell.metadata.get("tags", [])
    )
    return cell_index - injected + 1


def _describe_failure(notebook: Path, executed: Path, error: PapermillExecutionError) -> str:
    last_line = (error.evalue or "").strip().splitlines()
    detail = last_line[-1] if last_line else ""
    cell = _source_cell_number(executed, error.cell_index)
    return (
        f"notebook {notebook}, cell {cell} (execution count {error.exec_count}): "
        f"{error.ename}: {detail}"
    )


def redact_notebook(path: Path, values: list[str]) -> int:
    """Mask every credential value in an executed notebook (outputs and sources); how many.

    Databricks redacts secret-scope values in notebook outputs; this gives the notebooks the local
    runner keeps the same guarantee for the values of the local secrets provider.
    """
    if not values or not path.exists():
        return 0
    text = path.read_text(encoding="utf-8")
    masked = redact(text, [json.dumps(v)[1:-1] for v in values])
    if masked == text:
        return 0
    path.write_text(masked, encoding="utf-8")
    return sum(text.count(json.dumps(v)[1:-1]) for v in values)


def run_notebook(
    *,
    notebook: Path,
    output: Path,
    parameters: Mapping[str, str],
    context: TaskContext,
    pool: KernelPool,
    timeout_seconds: int,
) -> AttemptOutcome:
    """Run ``notebook`` once into ``output``; a timeout kills the kernel mid-cell."""
    # The provider's credentials and the values of secret-named parameters (papermill writes
    # the parameters into the notebook it keeps).
    secret_values = local_secret_values([
        *stored_local_secrets(parameters.get("storage_root")),
        *(value for name, value in parameters.items() if is_secret_name(name)),
    ])
    kernel = pool.acquire(notebook)
    cpu_before = process_cpu_seconds(kernel.pid)
    cpu_after: float | None = None
    timed_out = threading.Event()
    succeeded = False

    def expire() -> None:
        timed_out.set()
        kernel.kill()

    timer = threading.Timer(timeout_seconds, expire) if timeout_seconds > 0 else None
    try:
        kernel.bind(context, notebook.parent)
        if timer:
            timer.start()
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=dict(parameters),
            kernel_name="python3",
            km=kernel.manager,
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=True,
        )
        succeeded = True
        outcome = AttemptOutcome("SUCCESS")
    except PapermillExecutionError as error:
        if timed_out.is_set():
            outcome = AttemptOutcome("TIMEDOUT", f"timed out after {timeout_seconds} s")
        else:
            message = _describe_failure(notebook, output, error)
            outcome = AttemptOutcome("FAILED", redact(message, secret_values), error.ename,
                                     redact(error.evalue or "", secret_values))
    except Exception as error:  # kernel died, or could not be bound: the task failed
        if timed_out.is_set():
            outcome = AttemptOutcome("TIMEDOUT", f"timed out after {timeout_seconds} s")
        else:
            outcome = AttemptOutcome(
                "FAILED", f"notebook {notebook}: {type(error).__name__}: {error}"
            )
    finally:
        if timer:
            timer.cancel()
        cpu_after = process_cpu_seconds(kernel.pid)
        pool.release(kernel, reusable=succeeded and not timed_out.is_set())
        redact_notebook(output, secret_values)
    return dataclasses.replace(outcome, cpu_seconds=cpu_delta(cpu_before, cpu_after))
