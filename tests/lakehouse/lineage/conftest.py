"""Lineage tests write events with the file transport unless they configure HTTP."""

from __future__ import annotations

import pytest

from medallion.lakehouse.lineage.transport import OPENLINEAGE_URL_ENV, URL_ENV


@pytest.fixture(autouse=True)
def file_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events go to the file transport unless a test configures HTTP itself."""
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(OPENLINEAGE_URL_ENV, raising=False)
