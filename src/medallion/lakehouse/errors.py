"""Named errors. Each says what was expected, what was found, and where."""

from __future__ import annotations

from typing import ClassVar


class MedallionError(Exception):
    """Base class of every error this package raises on purpose.

    Deterministic unless ``transient``: the same input fails the same way, so a job runner does
    not retry it (a contract break, a checksum mismatch, a bad setting). A transient error (a
    service down or unreachable) may pass on a later attempt, and is retried.
    """

    transient: ClassVar[bool] = False


class ConfigError(MedallionError):
    """A configuration value is missing or malformed."""


class BundleError(MedallionError):
    """A bundle file does not describe a valid bundle; the message lists every problem found."""


class JobRunFailed(MedallionError):
    """A job run ended with at least one failed task."""


class SourceUnavailable(MedallionError):
    """A source system did not answer after every retry."""

    transient = True


class SourceResponseError(MedallionError):
    """A source answered, but refused the request (4xx) or sent a body of the wrong shape."""


class ConservationError(MedallionError):
    """A step's rows in do not equal its rows written plus its rows dropped by a named rule."""


class ComputeUnavailable(MedallionError):
    """The local Spark compute server could not be started or reached."""

    transient = True


class RawLoadError(MedallionError):
    """A raw-zone load is missing, incomplete or does not match its manifest."""


class KafkaJarsMissing(MedallionError):
    """The Kafka broker jars are not where the stand-in looks for them."""


class KafkaUnavailable(MedallionError):
    """The local Kafka broker could not be formatted, started or reached."""

    transient = True


class KafkaDeliveryFailed(MedallionError):
    """A record could not be produced to Kafka (bad key or delivery error)."""

    transient = True


class KafkaOffsetsLost(MedallionError):
    """A partition no longer holds the offsets a load must start from (retention or recreation)."""


class SecretNotFound(MedallionError):
    """A credential a task needs is in neither the secret scope nor the environment."""


class RawLoadsMissing(MedallionError):
    """A source has no complete raw load for a date the run should have landed."""


class SpecError(ConfigError):
    """A table or data-quality spec file does not match its JSON Schema or refers to nothing."""


class ContractViolation(MedallionError):
    """Incoming data breaks its schema contract: a required column is missing or cannot be cast."""


class ExpectationFailed(MedallionError):
    """An ``expect_or_fail`` rule (or a DQ breaker's critical check) failed; the run must stop."""


class WarehouseUnavailable(MedallionError):
    """A warehouse gold is published to cannot be reached, after retries; names it and why."""

    transient = True


class PublishError(MedallionError):
    """A publish to a warehouse failed after it started; the warehouse table is unchanged."""

    transient = True


class ReconciliationMismatch(MedallionError):
    """Gold and a warehouse table disagree on their figures after a publish; names both."""


class DeltaLogUnreadable(MedallionError):
    """A table's Delta log is missing, malformed, or has a type the catalog cannot hold."""


class AccessDenied(MedallionError):
    """A role read a table outside the schemas its grants allow; names both and what it may read."""


class SqlError(MedallionError):
    """Spark could not parse or analyse a query; names what is wrong and what exists instead."""


def is_deterministic(error_class: str | None) -> bool:
    """True when ``error_class`` names a deterministic error of this package (not retried)."""
    error = globals().get(error_class or "")
    return isinstance(error, type) and issubclass(error, MedallionError) and not error.transient
