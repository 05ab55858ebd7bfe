"""What the runner shows of a notebook's error: the failing class and message, never a JVM frame."""

from __future__ import annotations

import pytest

from medallion.platform.jobs.notebook import error_headline

# As Spark Connect raises them (texts taken from a real server, stack traces cut short).
CONNECT_UNMAPPED = """(io.delta.exceptions.MetadataChangedException) [DELTA_METADATA_CHANGED] \
MetadataChangedException: The metadata of the Delta table has been changed by a concurrent update. \
Please try the operation again.
Conflicting commit: {"timestamp":1796300000000,"operation":"ADD CONSTRAINT"}
Refer to https://docs.delta.io/latest/concurrency-control.html for more details.

JVM stacktrace:
io.delta.exceptions.MetadataChangedException
\tat org.apache.spark.sql.delta.ConflictChecker.checkNoMetadataUpdates(ConflictChecker.scala:425)
\tat org.apache.spark.sql.connect.execution.ExecuteThreadRunner.execute(Execute.scala:1)"""
CONNECT_MAPPED = """[DELTA_CONSTRAINT_ALREADY_EXISTS] Constraint 'nonneg' already exists. Please \
delete the old constraint first.
Old constraint:
id >= 0

JVM stacktrace:
org.apache.spark.sql.delta.DeltaAnalysisException
\tat org.apache.spark.sql.delta.DeltaErrorsBase.constraintAlreadyExists(DeltaErrors.scala:325)"""
# As a local (Py4J) session raises them.
PY4J = """An error occurred while calling o93.save.
: org.apache.spark.sql.delta.schema.DeltaInvariantViolationException: \
[DELTA_VIOLATE_CONSTRAINT_WITH_VALUES] CHECK constraint nonneg (id >= 0) violated by row \
with values:
 - id : -1
\tat org.apache.spark.sql.delta.schema.DeltaInvariantViolationException$.apply(Inv.scala:106)
\tat java.base/java.lang.Thread.run(Thread.java:840)"""


@pytest.mark.parametrize(
    ("ename", "evalue", "expected"),
    [
        (
            "UnknownException", CONNECT_UNMAPPED,
            ("MetadataChangedException", "[DELTA_METADATA_CHANGED] MetadataChangedException: "
             "The metadata of the Delta table has been changed by a concurrent update. Please "
             "try the operation again."),
        ),
        (
            "AnalysisException", CONNECT_MAPPED,
            ("DeltaAnalysisException", "[DELTA_CONSTRAINT_ALREADY_EXISTS] Constraint 'nonneg' "
             "already exists. Please delete the old constraint first."),
        ),
        (
            "Py4JJavaError", PY4J,
            ("DeltaInvariantViolationException", "[DELTA_VIOLATE_CONSTRAINT_WITH_VALUES] CHECK "
             "constraint nonneg (id >= 0) violated by row with values:"),
        ),
        # Python's own errors keep the last line, where their point is.
        ("ValueError", "the source table is empty", ("ValueError", "the source table is empty")),
        (
            "ExpectationFailed",
            "DQ breaker (silver): 1 critical check(s) failed:\n  silver.orders: key_unique failed",
            ("ExpectationFailed", "silver.orders: key_unique failed"),
        ),
    ],
    ids=["connect-unmapped", "connect-mapped", "py4j", "python", "python-multiline"],
)
def test_the_headline_names_the_failing_class_and_its_message(
    ename: str, evalue: str, expected: tuple[str, str]
) -> None:
    assert error_headline(ename, evalue) == expected
