"""A benchmark's temporary directory: removed when the run ends, or kept with ``--keep``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def scratch(prefix: str, *, keep: bool) -> Iterator[Path]:
    """A new temporary directory named ``prefix...``, removed after the block (an error too);
    with ``keep``, left in place and named, to look into after the run."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
