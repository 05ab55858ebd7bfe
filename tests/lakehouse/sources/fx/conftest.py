"""Fixtures of the FX-rates slice: the in-process FX API stand-in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from medallion.platform.devstack.fx_api import FxApiServer


@pytest.fixture
def fx_api() -> Iterator[FxApiServer]:
    """A fresh stand-in (seed 42) serving on a free port for one test."""
    with FxApiServer(seed=42) as server:
        yield server
