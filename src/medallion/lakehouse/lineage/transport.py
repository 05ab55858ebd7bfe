"""Where lineage events go: JSON lines under the storage root, or an HTTP endpoint.

- Default: the client's ``FileTransport`` appending to ``<storage_root>/_lineage/events.jsonl``,
  one event a line. Parallel tasks append to the same file, so each append holds a file lock:
  an event larger than one write never interleaves with another.
- ``MEDALLION_LINEAGE_URL`` (or the client's own ``OPENLINEAGE_URL``): the client's
  ``HttpTransport`` POSTing to ``<url>/api/v1/lineage`` (``MEDALLION_LINEAGE_ENDPOINT`` to
  change the path), with the API key from the secret ``lineage-api-key`` when there is one.
  Few, short retries: a lineage backend that is down must not hold a step up for long.
- ``MEDALLION_LINEAGE=off``: no events (the overhead benchmark's baseline).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from openlineage.client import OpenLineageClient
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from medallion.lakehouse.environment import get_secret
from medallion.lakehouse.locks import file_lock
from medallion.lakehouse.storage import StorageRoot

if TYPE_CHECKING:
    from openlineage.client.client import Event
    from openlineage.client.transport.transport import Transport

ENABLED_ENV = "MEDALLION_LINEAGE"  # "off" turns lineage off (benchmarks measure it so)
URL_ENV = "MEDALLION_LINEAGE_URL"
OPENLINEAGE_URL_ENV = "OPENLINEAGE_URL"
ENDPOINT_ENV = "MEDALLION_LINEAGE_ENDPOINT"
API_KEY_SECRET = "lineage-api-key"  # noqa: S105 (the secret's name, not its value)
EVENTS_DIR = "_lineage"
EVENTS_FILE = "events.jsonl"
HTTP_TIMEOUT_SECONDS = 5.0
HTTP_RETRY = {"total": 2, "connect": 2, "read": 2, "backoff_factor": 0.2,
              "status_forcelist": [500, 502, 503, 504], "allowed_methods": ["POST"]}
# The client's own extras read git metadata and the environment: events carry only our facets.
CLIENT_CONFIG = {"facets": {"source_code_location": {"disabled": True}}}


def events_path(storage_root: StorageRoot) -> Path:
    """The JSON-lines file the file transport appends to."""
    return storage_root / EVENTS_DIR / EVENTS_FILE


class LockedFileTransport(FileTransport):
    """The client's file transport in append mode, one locked append per event."""

    kind = "medallion_file"

    def __init__(self, path: Path) -> None:
        super().__init__(FileConfig(log_file_path=str(path), append=True))
        self.path = path

    def emit(self, event: Event) -> None:
        """Append ``event`` as one line, holding the file's lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path.with_name(f"{self.path.name}.lock")):
            super().emit(event)


def lineage_enabled() -> bool:
    """False when ``MEDALLION_LINEAGE`` is ``off`` (or ``false``, ``0``): no events at all."""
    return os.environ.get(ENABLED_ENV, "").strip().lower() not in {"off", "false", "0"}


def lineage_url() -> str:
    """The HTTP lineage endpoint's base URL, or "" for the file transport."""
    return os.environ.get(URL_ENV) or os.environ.get(OPENLINEAGE_URL_ENV) or ""


def transport_for(storage_root: StorageRoot) -> Transport:
    """HTTP when a lineage URL is configured, else JSON lines under ``storage_root``."""
    url = lineage_url()
    if not url:
        return LockedFileTransport(events_path(storage_root))
    api_key = get_secret(API_KEY_SECRET, fallback=lambda: None)
    config = HttpConfig(
        url=url,
        endpoint=os.environ.get(ENDPOINT_ENV, "api/v1/lineage"),
        timeout=HTTP_TIMEOUT_SECONDS,
        retry=HTTP_RETRY,
    )
    if api_key:
        config.auth = ApiKeyTokenProvider({"api_key": api_key})
    return HttpTransport(config)


def client_for(storage_root: StorageRoot) -> OpenLineageClient:
    """An OpenLineage client with this storage root's transport."""
    return OpenLineageClient(transport=transport_for(storage_root), config=CLIENT_CONFIG)
