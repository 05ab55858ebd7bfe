"""Fixtures of the bundle tests: a copy of a small valid bundle to break one thing in."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[3]
# The official JSON Schema of bundle files, vendored beside the checkout (not in a user's clone):
# an optional second check, in tests only.
VENDORED_SCHEMA = REPO_ROOT.parent / "shared" / "vendor" / "databricks-bundle-schema.json"

Edit = Callable[[str, str, str], None]
LineOf = Callable[[str, str], int]


@pytest.fixture(autouse=True)
def _no_bundle_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the caller's BUNDLE_VAR_* and schema settings out of the tests."""
    for name in list(os.environ):
        if name.startswith("BUNDLE_VAR_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("MEDALLION_BUNDLE_SCHEMA", raising=False)
    monkeypatch.setenv("USER", "ada@example.com")


@pytest.fixture
def bundle_root(tmp_path: Path) -> Path:
    """A fresh copy of the minimal valid bundle."""
    root = tmp_path / "bundle"
    shutil.copytree(FIXTURES / "minimal", root)
    return root


@pytest.fixture
def edit(bundle_root: Path) -> Edit:
    """Replace exactly one occurrence of a text in a file of the copied bundle."""

    def replace_once(rel: str, old: str, new: str) -> None:
        path = bundle_root / rel
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
        path.write_text(text.replace(old, new))

    return replace_once


@pytest.fixture
def line_of(bundle_root: Path) -> LineOf:
    """The 1-based line of the only line of a bundle file that contains a text."""

    def find(rel: str, text: str) -> int:
        numbered = enumerate((bundle_root / rel).read_text().splitlines(), 1)
        lines = [i for i, line in numbered if text in line]
        assert len(lines) == 1, f"{text!r} is on lines {lines} of {rel}"
        return lines[0]

    return find


@pytest.fixture
def schema_path() -> Path:
    """The vendored bundle schema; skips the (schema-only) test when it is absent."""
    if not VENDORED_SCHEMA.is_file():
        pytest.skip(f"vendored bundle schema not found ({VENDORED_SCHEMA}); schema check not run")
    return VENDORED_SCHEMA
