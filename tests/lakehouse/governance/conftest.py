"""The issue's role matrix and the repository's declared roles, for every governance test."""

from __future__ import annotations

import pytest

from medallion.lakehouse.governance import Roles
from medallion.lakehouse.settings import repo_root
from medallion.platform.roles import declared_roles

# role -> the schemas it may read (the words, not read from the bundle).
READABLE = {
    "data_engineer": ("bronze", "silver", "gold", "ops"),
    "data_analyst": ("silver", "gold"),
    "ml": ("gold",),
}
MATRIX = [(role, schema) for role in READABLE for schema in ("bronze", "silver", "gold")]


@pytest.fixture(scope="module")
def roles() -> Roles:
    return declared_roles(repo_root())
