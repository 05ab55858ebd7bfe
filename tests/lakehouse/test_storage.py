"""StorageRoot: the storage root resolved once, path-like, and compared by its path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medallion.lakehouse.storage import StorageRoot, storage_root_of


def test_a_relative_root_is_resolved_once_when_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = StorageRoot("lake")

    monkeypatch.chdir("/")

    assert root.path == tmp_path / "lake"


def test_it_is_path_like(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)

    assert (os.fspath(root), Path(root), str(root)) == (str(tmp_path), tmp_path, str(tmp_path))
    assert os.path.join(root, "raw") == str(tmp_path / "raw")  # noqa: PTH118 - os.path takes it


def test_slash_gives_a_path_under_it(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)

    assert root / "bronze" / "orders" == tmp_path / "bronze" / "orders"
    assert (root.raw, root.system, root.state, root.locks) == (
        tmp_path / "raw",
        tmp_path / "_system",
        tmp_path / "_system" / "state",
        tmp_path / "_system" / "locks",
    )


def test_roots_are_equal_by_their_resolved_path(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)

    assert root == StorageRoot(str(tmp_path / "x" / ".."))
    assert root != StorageRoot(tmp_path / "other")
    assert {root, StorageRoot(tmp_path)} == {root}
    assert root != tmp_path  # a root is no Path: compare root.path


def test_a_root_built_from_a_root_is_the_same_root(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)

    assert StorageRoot(root) == root
    assert StorageRoot(root).path is root.path


def test_repr_names_the_path(tmp_path: Path) -> None:
    assert repr(StorageRoot(tmp_path)) == f"StorageRoot({str(tmp_path)!r})"


def test_a_job_without_a_storage_root_parameter_has_none(tmp_path: Path) -> None:
    assert storage_root_of({"storage_root": str(tmp_path)}) == StorageRoot(tmp_path)
    assert storage_root_of({"storage_root": ""}) is None
    assert storage_root_of({}) is None
