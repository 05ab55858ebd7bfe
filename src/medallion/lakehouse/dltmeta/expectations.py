"""A table's rules in dlt-meta's data-quality file (DQE): ``{group: {rule name: predicate}}``.

Our ``expect``, ``expect_or_drop`` and ``expect_or_fail`` (and their ``expect_all*`` forms, the
same actions) keep their names and predicates. ``expect_or_quarantine`` does not carry over as
written: dlt-meta 0.1.0 applies that group with ``expect_all_or_drop`` to the *quarantine*
table only, so its predicates must describe the rows to quarantine and the main table keeps
them unless the same rules are also dropped there (databrickslabs/sdp-meta issue #435). Each of
our quarantine rules is therefore an ``expect_or_drop`` rule of the main table (same name, same
predicate, so its counts keep their name), and the quarantine table gets one rule that holds
exactly for the rows failing at least one of them, NULL counting as a failure as in our engine.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import sqlglot
from sqlglot import exp

from medallion.lakehouse.quality.spec import Action, Expectation

EXPECT = "expect"
EXPECT_OR_DROP = "expect_or_drop"
EXPECT_OR_FAIL = "expect_or_fail"
EXPECT_OR_QUARANTINE = "expect_or_quarantine"
QUARANTINE_RULE = "fails_a_quarantine_rule"
"""The name of the quarantine table's one rule (its counts in the event log)."""
_GROUP_OF: Mapping[Action, str] = {
    Action.WARN: EXPECT,
    Action.DROP: EXPECT_OR_DROP,
    Action.QUARANTINE: EXPECT_OR_DROP,
    Action.FAIL: EXPECT_OR_FAIL,
}
_GROUP_ORDER = (EXPECT, EXPECT_OR_DROP, EXPECT_OR_FAIL, EXPECT_OR_QUARANTINE)


def quarantine_predicate(predicates: Iterable[str]) -> str:
    """True exactly for a row that fails (is false or NULL on) at least one of ``predicates``."""
    return f"NOT coalesce({' AND '.join(f'({predicate})' for predicate in predicates)}, false)"


def dqe_for(rules: Iterable[Expectation]) -> dict[str, dict[str, str]]:
    """dlt-meta's DQE mapping of ``rules``, groups in a fixed order, empty groups left out."""
    groups: dict[str, dict[str, str]] = {group: {} for group in _GROUP_ORDER}
    quarantined = []
    for rule in rules:
        groups[_GROUP_OF[rule.action]][rule.name] = rule.expression
        if rule.action is Action.QUARANTINE:
            quarantined.append(rule.expression)
    if quarantined:
        groups[EXPECT_OR_QUARANTINE][QUARANTINE_RULE] = quarantine_predicate(quarantined)
    return {group: rules for group, rules in groups.items() if rules}


def rules_reading(rules: Iterable[Expectation], columns: Collection[str]) -> list[Expectation]:
    """The rules whose predicate reads any of ``columns`` (e.g. a lookup's boolean column)."""
    wanted = set(columns)
    return [rule for rule in rules if wanted & _columns_read(rule.expression)]


def _columns_read(predicate: str) -> set[str]:
    """The column names a predicate reads (parsed as Spark SQL, as the spec loader checked it)."""
    parsed = sqlglot.parse_one(predicate, read="spark")
    return {column.name for column in parsed.find_all(exp.Column)}
