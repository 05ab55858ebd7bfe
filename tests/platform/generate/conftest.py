"""Generated data shared by the generator tests (generating scale 1.0 takes ~0.25 s)."""

from __future__ import annotations

import pytest

from medallion.platform.generate import GeneratedData, GeneratorConfig, generate


@pytest.fixture(scope="module")
def data() -> GeneratedData:
    """The default data set: seed 42, scale 1.0, 7 days from 2026-11-01."""
    return generate(GeneratorConfig())
