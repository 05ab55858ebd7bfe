"""OpenLineage run events and facets for one step run.

Facets on every event: ``jobType`` (BATCH task), ``parent`` (the job run the step belongs to,
when known) and ``medallion_task`` (the job, job run id and task as the runner names them). On
COMPLETE each output written as a lakehouse table carries ``schema`` (read from the table after
the write) and ``outputStatistics`` (rows written, from the step's result); a checked dataset
carries ``dataQualityMetrics`` and ``dataQualityAssertions`` (one per expectation, from the
engine's metrics); ``gold.fact_customer_360`` carries ``columnLineage`` from its Spark plan. On
FAIL the run carries ``errorMessage`` and ``medallion_status`` (``FAILED_SCHEMA_MISMATCH`` for
a contract violation, ``FAILED_DATA_QUALITY`` for a failed expectation, else ``FAILED``).
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    BaseFacet,
    RunFacet,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    schema_dataset,
)
from openlineage.client.generated.output_statistics_output_dataset import (
    OutputStatisticsOutputDatasetFacet,
)
from openlineage.client.uuid import generate_new_uuid
from pyspark.sql.types import ArrayType, DataType, StructType

from medallion.lakehouse.errors import ContractViolation, ExpectationFailed
from medallion.lakehouse.lineage.columns import SourceColumn
from medallion.lakehouse.lineage.steps import DatasetRef, StepLineage, table_ref
from medallion.lakehouse.storage import StorageRoot

if TYPE_CHECKING:
    from medallion.lakehouse.quality.metrics import DQMetrics

JOB_NAMESPACE = "medallion"
PRODUCER = "urn:medallion-lakehouse:lineage"
FACET_SCHEMA = "urn:medallion-lakehouse:facets#/$defs/"
SCHEMA_MISMATCH = "FAILED_SCHEMA_MISMATCH"
DATA_QUALITY = "FAILED_DATA_QUALITY"
FAILED = "FAILED"
_JOB_RUN_IDS = uuid.UUID("5b0f3d44-6d3e-4d8e-9a53-6f1d2f0c7a11")  # uuid5 namespace of job runs


@attr.define
class MedallionStatusRunFacet(RunFacet):
    """Why a run failed, in the platform's words: FAILED_SCHEMA_MISMATCH and friends."""

    status: str
    error: str

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA + "MedallionStatusRunFacet"


@attr.define
class MedallionTaskRunFacet(RunFacet):
    """The job run and task a step ran in, as the runner (or Databricks) names them."""

    job: str
    job_run_id: str
    task: str

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA + "MedallionTaskRunFacet"


@dataclass(frozen=True)
class JobRun:
    """The job run a step belongs to: job name, its run id, the task."""

    job: str
    run_id: str
    task: str

    @property
    def openlineage_run_id(self) -> str:
        """A UUID for the job run (the runner's ids are not UUIDs): stable for the run."""
        try:
            return str(uuid.UUID(self.run_id))
        except ValueError:
            return str(uuid.uuid5(_JOB_RUN_IDS, f"{self.job}/{self.run_id}"))


@dataclass(frozen=True)
class StepRun:
    """One run of a step: its OpenLineage run id, what it reads and writes, its job run."""

    run_id: str
    lineage: StepLineage
    job_run: JobRun | None

    @classmethod
    def start(cls, lineage: StepLineage, job_run: JobRun | None) -> StepRun:
        """A new run (UUIDv7: sortable by start time)."""
        return cls(str(generate_new_uuid()), lineage, job_run)


def run_event(
    step: StepRun,
    state: RunState,
    *,
    outputs: Sequence[OutputDataset] | None = None,
    run_facets: Mapping[str, RunFacet] | None = None,
    now: datetime | None = None,
) -> RunEvent:
    """A run event of ``step`` in ``state``; outputs default to the declared ones, bare."""
    facets: dict[str, RunFacet] = {}
    if step.job_run is not None:
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=step.job_run.openlineage_run_id),
            job=parent_run.Job(namespace=JOB_NAMESPACE, name=step.job_run.job),
            producer=PRODUCER,
        )
        facets["medallion_task"] = MedallionTaskRunFacet(
            job=step.job_run.job, job_run_id=step.job_run.run_id, task=step.job_run.task,
            producer=PRODUCER,
        )
    facets.update(run_facets or {})
    lineage = step.lineage
    return RunEvent(
        eventType=state,
        eventTime=(now or datetime.now(UTC)).isoformat(),
        run=Run(runId=step.run_id, facets=facets),
        job=Job(
            namespace=JOB_NAMESPACE,
            name=lineage.job_name,
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="MEDALLION", jobType="TASK",
                    producer=PRODUCER,
                )
            },
        ),
        inputs=[InputDataset(namespace=d.namespace, name=d.name) for d in lineage.inputs],
        outputs=list(outputs) if outputs is not None else bare_outputs(lineage.outputs),
        producer=PRODUCER,
    )


def bare_outputs(outputs: Sequence[DatasetRef]) -> list[OutputDataset]:
    """The declared outputs without facets."""
    return [OutputDataset(namespace=d.namespace, name=d.name) for d in outputs]


def failure_facets(error: BaseException) -> dict[str, RunFacet]:
    """``errorMessage`` (message, Python, stack trace) and ``medallion_status``."""
    return {
        "errorMessage": error_message_run.ErrorMessageRunFacet(
            message=f"{type(error).__name__}: {error}",
            programmingLanguage="PYTHON",
            stackTrace="".join(traceback.format_exception(error)),
            producer=PRODUCER,
        ),
        "medallion_status": MedallionStatusRunFacet(
            status=failure_status(error), error=type(error).__name__, producer=PRODUCER
        ),
    }


def failure_status(error: BaseException) -> str:
    """The platform's failure status of ``error``."""
    if isinstance(error, ContractViolation):
        return SCHEMA_MISMATCH
    if isinstance(error, ExpectationFailed):
        return DATA_QUALITY
    return FAILED


def schema_facet(schema: StructType) -> schema_dataset.SchemaDatasetFacet:
    """Each column with its Spark SQL type; struct fields (also inside arrays) nested."""
    return schema_dataset.SchemaDatasetFacet(fields=_schema_fields(schema), producer=PRODUCER)


def _schema_fields(schema: StructType) -> list[schema_dataset.SchemaDatasetFacetFields]:
    return [
        schema_dataset.SchemaDatasetFacetFields(
            name=column.name,
            type=column.dataType.simpleString(),
            fields=_nested(column.dataType),
        )
        for column in schema.fields
    ]


def _nested(data_type: DataType) -> list[schema_dataset.SchemaDatasetFacetFields]:
    if isinstance(data_type, ArrayType):
        return _nested(data_type.elementType)
    if isinstance(data_type, StructType):
        return _schema_fields(data_type)
    return []


def statistics_facet(rows: int) -> OutputStatisticsOutputDatasetFacet:
    """Rows the step wrote to the output."""
    return OutputStatisticsOutputDatasetFacet(rowCount=rows, producer=PRODUCER)


def dq_facets(metrics: DQMetrics) -> dict[str, BaseFacet]:
    """``dataQualityMetrics`` (rows checked) and one assertion per expectation of a check.

    An assertion succeeds when no row failed it; ``params`` keeps the engine's counts and the
    rule's action (warn, drop, quarantine, fail), as the DQ event log has them.
    """
    return {
        "dataQualityMetrics": data_quality_metrics_dataset.DataQualityMetricsDatasetFacet(
            rowCount=metrics.rows_in, columnMetrics={}, producer=PRODUCER
        ),
        "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
            assertions=[
                data_quality_assertions_dataset.Assertion(
                    assertion=rule.name,
                    success=rule.failed_records == 0,
                    severity="error" if rule.action == "fail" else "warn",
                    content=rule.expression,
                    contentType="sql",
                    params={
                        "action": rule.action,
                        "passed_records": rule.passed_records,
                        "failed_records": rule.failed_records,
                    },
                )
                for rule in metrics.expectations
            ],
            producer=PRODUCER,
        ),
    }


def column_lineage_facet(
    storage_root: StorageRoot, lineage: Mapping[str, tuple[SourceColumn, ...]]
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """Direct column lineage: each output column's source table columns, with the subtype."""
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            column: column_lineage_dataset.Fields(
                inputFields=[
                    column_lineage_dataset.InputField(
                        namespace=table_ref(storage_root, source.table).namespace,
                        name=source.table,
                        field=source.column,
                        transformations=[
                            column_lineage_dataset.Transformation(
                                type="DIRECT", subtype=source.subtype
                            )
                        ],
                    )
                    for source in sources
                ]
            )
            for column, sources in lineage.items()
            if sources
        },
        producer=PRODUCER,
    )
