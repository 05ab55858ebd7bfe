"""Execute one notebook task attempt with papermill on a pooled kernel, with a timeout."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError

from medallion.lakehouse.credentials import local_secret_values, redact, stored_local_secrets
from medallion.lakehouse.runtime import TaskContext
from medallion.lakehouse.storage import storage_root_of
from medallion.platform.jobs.cpu import cpu_delta, process_cpu_seconds
from medallion.platform.jobs.kernels import KernelPool
from medallion.platform.jobs.notifications import is_secret_name

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


# A JVM exception's class, as Spark Connect's "(class) message", a Py4J ": class: message" line,
# or the first line of a JVM stack trace.
_JVM_CLASS = re.compile(
    r"^(?:\(|:\s*)?(?:[a-z_$][\w$]*\.)+(?P<name>[A-Z][\w$]*)(?:\)\s*|:\s*|$)(?P<message>.*)$"
)
_STACK_FRAME = re.compile(r"^\s*at [\w$.<>]+\(")


def error_headline(ename: str, evalue: str) -> tuple[str, str]:
    """The class and message to show for a notebook's error: what failed, not where.

    A Spark error's text ends in a JVM stack trace, whose last line says nothing; it is named by
    the JVM exception's class and the first line of its message (``MetadataChangedException: The
    metadata of the Delta table has been changed ...``). Any other error keeps its Python class
    and the last line of its message, where Python's own tracebacks put the point.
    """
    text = evalue.strip()
    head, _, trace = text.partition("JVM stacktrace:")
    lines = [line.strip() for line in head.splitlines() if line.strip()]
    jvm = bool(trace) or any(_STACK_FRAME.match(line) for line in lines)
    if not jvm:
        return ename, lines[-1] if lines else ""
    lines = [line for line in lines if not _STACK_FRAME.match(line)]
    trace_head = next((line.strip() for line in trace.splitlines() if line.strip()), "")
    # Connect's "(class) message" first, then the trace's class, then a Py4J ": class: ..." line.
    for line in [*lines[:1], trace_head, *lines[1:]]:
        found = _JVM_CLASS.match(line)
        if found:
            message = found["message"].strip() or next(
                (other for other in lines if other != line), ""
            )
            return found["name"], message
    return ename, lines[0] if lines else ""


def _describe_failure(notebook: Path, executed: Path, error: PapermillExecutionError) -> str:
    name, detail = error_headline(error.ename, error.evalue or "")
    cell = _source_cell_number(executed, error.cell_index)
    return (
        f"notebook {notebook}, cell {cell} (execution count {error.exec_count}): "
        f"{name}: {detail}"
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
        *stored_local_secrets(storage_root_of(parameters)),
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
