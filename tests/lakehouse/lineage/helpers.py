"""Read lineage events back, make their run-specific parts stable, build expected events."""

from __future__ import annotations

import json
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from medallion.lakehouse.lineage.transport import events_path
from medallion.lakehouse.storage import StorageRoot

CLIENT_VERSION = version("openlineage-python")
PRODUCER = "urn:medallion-lakehouse:lineage"
CLIENT_TAGS = {
    "_producer": f"https://github.com/OpenLineage/OpenLineage/tree/{CLIENT_VERSION}/client/python",
    "_schemaURL": "https://openlineage.io/spec/facets/1-0-0/TagsRunFacet.json#/$defs/TagsRunFacet",
    "tags": [
        {"key": "openlineage_client_version", "source": "OPENLINEAGE_CLIENT",
         "value": CLIENT_VERSION},
    ],
}
JOB_TYPE = {
    "_producer": PRODUCER,
    "_schemaURL": "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json"
    "#/$defs/JobTypeJobFacet",
    "integration": "MEDALLION",
    "jobType": "TASK",
    "processingType": "BATCH",
}
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def read_events(storage_root: Path) -> list[dict[str, Any]]:
    """The events the file transport wrote under ``storage_root``, in order."""
    events = events_path(StorageRoot(storage_root))
    return [json.loads(line) for line in events.read_text().splitlines()]


def stable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events`` with eventTime, runId and stack traces replaced by placeholders.

    Checks first that they are what they should be: one UUIDv7 run id shared by the events,
    ISO event times.
    """
    run_ids = {event["run"]["runId"] for event in events}
    assert len(run_ids) == 1
    assert uuid.UUID(run_ids.pop()).version == 7
    for event in events:
        assert event["eventTime"].endswith("+00:00")
        event["eventTime"] = "<time>"
        event["run"]["runId"] = "<run>"
        error = event["run"]["facets"].get("errorMessage")
        if error is not None:
            assert error["stackTrace"].startswith("Traceback (most recent call last):")
            error["stackTrace"] = "<trace>"
    return events


def run_event(
    event_type: str,
    job: str,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    run_facets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole run event as the file and HTTP transports serialise it (after ``stable``)."""
    return {
        "eventTime": "<time>",
        "eventType": event_type,
        "inputs": [{"facets": {}, "inputFacets": {}, **dataset} for dataset in inputs],
        "job": {"facets": {"jobType": JOB_TYPE}, "name": job, "namespace": "medallion"},
        "outputs": outputs,
        "producer": PRODUCER,
        "run": {"facets": {**(run_facets or {}), "tags": CLIENT_TAGS}, "runId": "<run>"},
        "schemaURL": RUN_EVENT_SCHEMA,
    }


def bare(namespace: str, name: str) -> dict[str, Any]:
    """An output dataset without facets."""
    return {"facets": {}, "name": name, "namespace": namespace, "outputFacets": {}}


# gold.fact_customer_360's column lineage, as its transform's Spark plan gives it.
CUSTOMER_360_LINEAGE = {
    "customer_id": [("silver.dim_customer", "customer_id", "TRANSFORMATION")],
    "lifetime_value_usd": [
        ("silver.fact_orders", "order_amount", "AGGREGATION"),
        ("silver.fx_rates", "rate", "AGGREGATION"),
    ],
    "name_masked": [("silver.dim_customer", "name", "TRANSFORMATION")],
    "email_masked": [("silver.dim_customer", "email", "TRANSFORMATION")],
    "phone_masked": [("silver.dim_customer", "phone", "TRANSFORMATION")],
    "country": [("silver.dim_customer", "country", "IDENTITY")],
    "lifecycle_stage": [("silver.dim_customer", "lifecycle_stage", "IDENTITY")],
    "first_order_ts": [("silver.fact_orders", "order_ts", "AGGREGATION")],
    "last_order_ts": [("silver.fact_orders", "order_ts", "AGGREGATION")],
    "session_count": [("silver.fact_events", "session_id", "AGGREGATION")],
    "last_seen_ts": [("silver.fact_events", "event_ts", "AGGREGATION")],
}
