"""The lakehouse's storage root: one typed value, resolved once at the edge.

A storage root is the directory the lakehouse keeps its files under: the raw landing zone
(``raw/``), run state, locks, generated secrets and the local services' data (``_system/``), and,
locally, the Delta tables themselves (``<schema>/<table>``). On Databricks it is a Unity Catalog
volume and holds only the raw zone and run state; the tables are managed tables in a catalog.

The edges (the CLI, the runner, a notebook's parameter cell) build a ``StorageRoot`` once from
the ``storage_root`` job parameter; everything below takes that value and never re-resolves it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["StorageRoot", "storage_root_of"]


class StorageRoot:
    """The lakehouse's storage root, an absolute path resolved once when it is built.

    Built from a string, a path or another ``StorageRoot``. It is path-like (``Path(root)``,
    ``open`` and ``os.path`` accept it) and ``root / "part"`` is a ``Path`` under it; two roots
    are equal when their resolved paths are.
    """

    __slots__ = ("path",)

    path: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = root.path if isinstance(root, StorageRoot) else Path(root).resolve()

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, part: str | os.PathLike[str]) -> Path:
        return self.path / part

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StorageRoot):
            return NotImplemented
        return self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"StorageRoot({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    @property
    def raw(self) -> Path:
        """The raw landing zone, ``<root>/raw``."""
        return self.path / "raw"

    @property
    def system(self) -> Path:
        """What the lakehouse and the local platform keep for themselves, ``<root>/_system``."""
        return self.path / "_system"

    @property
    def state(self) -> Path:
        """The run state (replay plans, build records, resets, the bronze partitions written, the
        loads silver built from): ``<root>/_system/state``."""
        return self.system / "state"

    @property
    def locks(self) -> Path:
        """The lock files of sources and jobs, ``<root>/_system/locks``."""
        return self.system / "locks"


def storage_root_of(parameters: Mapping[str, str]) -> StorageRoot | None:
    """A job run's ``storage_root`` parameter as a root; None when it has none (or it is empty)."""
    value = parameters.get("storage_root")
    return StorageRoot(value) if value else None
