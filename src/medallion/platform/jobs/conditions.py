"""``condition_task`` evaluation, as the Jobs service does it."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from medallion.platform.jobs.model import ConditionOp

_OPERATORS: dict[ConditionOp, Callable[[Any, Any], bool]] = {
    ConditionOp.EQUAL_TO: operator.eq,
    ConditionOp.NOT_EQUAL: operator.ne,
    ConditionOp.GREATER_THAN: operator.gt,
    ConditionOp.GREATER_THAN_OR_EQUAL: operator.ge,
    ConditionOp.LESS_THAN: operator.lt,
    ConditionOp.LESS_THAN_OR_EQUAL: operator.le,
}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def evaluate_condition(op: ConditionOp, left: str, right: str, where: str) -> bool:
    """Numbers compare numerically; other operands only with EQUAL_TO / NOT_EQUAL, as strings."""
    left_number, right_number = _number(left), _number(right)
    if left_number is not None and right_number is not None:
        return _OPERATORS[op](left_number, right_number)
    if op in {ConditionOp.EQUAL_TO, ConditionOp.NOT_EQUAL}:
        return _OPERATORS[op](left, right)
    raise ValueError(
        f"{where}: {op.value} needs two numbers; got {left!r} and {right!r}"
    )
