"""What a notebook needs from its surroundings: Spark, parameters' context and ``dbutils``.

On Databricks these come from the runtime. Under the local runner, the runner binds a task context
(run directory, task key, parameters) into the kernel before the notebook executes, and the small
``dbutils`` shim below stores task values where the runner reads them. Interactively (plain Jupyter)
there is no context: ``taskValues.get`` returns its ``debugValue`` and ``set`` only remembers the
value in memory, as Databricks does outside a job.

Never imports ``databricks.sdk.runtime`` off Databricks: it raises, or hangs, without credentials.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medallion.lakehouse.environment import DATABRICKS, resolve_target
from medallion.lakehouse.errors import ConfigError

CONTEXT_ENV = "MEDALLION_TASK_CONTEXT"


@dataclass(frozen=True)
class TaskContext:
    """Where this notebook runs inside a job run (absent interactively)."""

    job_key: str
    run_id: str
    task_key: str
    run_dir: Path
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``<job>/<run_id>/<task_key>``: names this task in Delta commits and Spark job tags."""
        return f"{self.job_key}/{self.run_id}/{self.task_key}"

    @property
    def task_values_dir(self) -> Path:
        """The folder task values are exchanged through."""
        return self.run_dir / "_task_values"

    def to_json(self) -> str:
        """Serialised form, as the runner passes it to a kernel."""
        return json.dumps({
            "job_key": self.job_key, "run_id": self.run_id, "task_key": self.task_key,
            "run_dir": str(self.run_dir), "parameters": self.parameters,
        })

    @classmethod
    def from_json(cls, text: str) -> TaskContext:
        """Parse what ``to_json`` wrote."""
        data = json.loads(text)
        return cls(data["job_key"], data["run_id"], data["task_key"], Path(data["run_dir"]),
                   dict(data.get("parameters", {})))


def task_context() -> TaskContext | None:
    """The context the local runner bound into this kernel, if any."""
    raw = os.environ.get(CONTEXT_ENV)
    return TaskContext.from_json(raw) if raw else None


def reset_kernel() -> None:
    """Make a recycled kernel look fresh: no Spark session, no task context, empty namespace."""
    from IPython import get_ipython

    if os.environ.get("SPARK_REMOTE"):
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        session = ConnectSession.getActiveSession()
        if session is not None:
            session.stop()
    os.environ.pop(CONTEXT_ENV, None)
    shell = get_ipython()
    if shell is not None:
        shell.reset(new_session=True)


def read_task_values(run_dir: Path, task_key: str) -> dict[str, Any]:
    """The values ``task_key`` set during a run (empty if none)."""
    path = run_dir / "_task_values" / f"{task_key}.json"
    if not path.exists():
        return {}
    values: dict[str, Any] = json.loads(path.read_text())
    return values


class _TaskValues:
    """``dbutils.jobs.taskValues``: set in one task, get in a downstream one."""

    def __init__(self) -> None:
        self._interactive: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        """Set a value for downstream tasks; it must be JSON-serialisable (as on Databricks)."""
        try:
            encoded = json.dumps(value)
        except TypeError as error:
            raise ConfigError(
                f"task value {key!r}: expected a JSON-serialisable value, got "
                f"{type(value).__name__}"
            ) from error
        context = task_context()
        if context is None:
            self._interactive[key] = value
            return
        context.task_values_dir.mkdir(parents=True, exist_ok=True)
        path = context.task_values_dir / f"{context.task_key}.json"
        values = read_task_values(context.run_dir, context.task_key)
        values[key] = json.loads(encoded)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(values, indent=2))
        tmp.replace(path)

    def get(
        self, taskKey: str, key: str, default: Any = None, debugValue: Any = None  # noqa: N803
    ) -> Any:
        """A value an upstream task set; ``debugValue`` outside a job run, as on Databricks."""
        context = task_context()
        if context is None:
            if debugValue is None:
                raise ConfigError(
                    f"taskValues.get({taskKey!r}, {key!r}) outside a job run needs a debugValue"
                )
            return debugValue
        values = read_task_values(context.run_dir, taskKey)
        if key in values:
            return values[key]
        if default is None:
            raise ConfigError(
                f"task value {key!r} of task {taskKey!r} was not set in run {context.run_id} "
                "and no default was given"
            )
        return default


class _Jobs:
    def __init__(self) -> None:
        self.taskValues = _TaskValues()


class _Widgets:
    """``dbutils.widgets`` reads the task's parameters."""

    def get(self, name: str) -> str:
        """The parameter's value for this task."""
        context = task_context()
        if context is None or name not in context.parameters:
            raise ConfigError(f"widget {name!r} is not defined for this notebook run")
        return context.parameters[name]

    def text(self, name: str, default_value: str = "", label: str | None = None) -> None:
        """Declaring a widget is a no-op locally: parameters arrive through papermill."""


class LocalDbutils:
    """The subset of ``dbutils`` the project's notebooks use, for local and CI runs."""

    def __init__(self) -> None:
        self.jobs = _Jobs()
        self.widgets = _Widgets()


def _databricks_dbutils() -> Any:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and "dbutils" in shell.user_ns:
        return shell.user_ns["dbutils"]
    from databricks.sdk.runtime import dbutils as runtime_dbutils  # on Databricks only

    return runtime_dbutils


dbutils: Any = _databricks_dbutils() if resolve_target() == DATABRICKS else LocalDbutils()
