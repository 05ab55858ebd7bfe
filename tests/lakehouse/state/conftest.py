"""Fixtures of the state tests: the in-process CRM API stand-in, for a real extractor run."""

from __future__ import annotations

from tests.lakehouse.sources.crm.conftest import crm_api

__all__ = ["crm_api"]
