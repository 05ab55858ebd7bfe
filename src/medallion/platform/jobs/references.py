"""Dynamic value references (``{{job.parameters.x}}``, ``{{tasks.t.values.v}}``) at run time."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medallion.lakehouse.errors import BundleError

_REFERENCE = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


@dataclass(frozen=True)
class ReferenceScope:
    """What references can see while one task starts."""

    job_key: str
    job_name: str
    run_id: str
    start_time: datetime
    job_parameters: Mapping[str, str]
    task_key: str
    task_values: Callable[[str], Mapping[str, Any]]
    iteration_input: Any = None  # the current item inside a for_each_task


def _render(value: Any) -> str:
    """Task values render as JSON, except strings, which render as themselves (as on Databricks)."""
    return value if isinstance(value, str) else json.dumps(value)


def _lookup(name: str, scope: ReferenceScope, where: str) -> str:
    parts = name.split(".")
    simple = {
        "job.id": scope.job_key,
        "job.name": scope.job_name,
        "job.run_id": scope.run_id,
        "task.name": scope.task_key,
        "job.start_time.iso_date": scope.start_time.date().isoformat(),
        "job.start_time.iso_datetime": scope.start_time.isoformat(timespec="seconds"),
        "job.start_time.timestamp": str(int(scope.start_time.timestamp() * 1000)),
    }
    if name in simple:
        return simple[name]
    if parts[0] == "input" and scope.iteration_input is not None:
        value = scope.iteration_input
        for field_name in parts[1:]:
            if not isinstance(value, Mapping) or field_name not in value:
                raise BundleError(f"{where}: {{{{{name}}}}}: the input {scope.iteration_input!r} "
                                  f"has no field {field_name!r}")
            value = value[field_name]
        return _render(value)
    if len(parts) == 3 and parts[:2] == ["job", "parameters"]:
        if parts[2] not in scope.job_parameters:
            raise BundleError(
                f"{where}: {{{{{name}}}}} names job parameter {parts[2]!r}, which the job does "
                f"not declare (declared: {', '.join(sorted(scope.job_parameters)) or 'none'})"
            )
        return scope.job_parameters[parts[2]]
    if len(parts) == 4 and parts[0] == "tasks" and parts[2] == "values":
        values = scope.task_values(parts[1])
        if parts[3] not in values:
            raise BundleError(
                f"{where}: {{{{{name}}}}}: task {parts[1]!r} set no value {parts[3]!r} "
                f"(it set: {', '.join(sorted(values)) or 'nothing'})"
            )
        return _render(values[parts[3]])
    raise BundleError(f"{where}: unknown dynamic value reference {{{{{name}}}}}")


def resolve_references(text: str, scope: ReferenceScope, where: str) -> str:
    """Replace every ``{{...}}`` reference in ``text``."""
    return _REFERENCE.sub(lambda match: _lookup(match.group(1), scope, where), text)
