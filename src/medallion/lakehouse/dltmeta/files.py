"""Writing an onboarding: the onboarding file, the files it names, and what was left out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medallion.lakehouse.dltmeta.onboarding import LEFT_OUT_FILE, ONBOARDING_FILE, Onboarding

_GENERATED_DIRS = ("dqe", "schemas", "transformations")


def write_onboarding(onboarding: Onboarding, output: Path) -> list[Path]:
    """Write ``onboarding`` under ``output``; the files written, onboarding file first.

    Files a previous run wrote in the generated folders and this one did not (a table removed
    from config/dq) are removed, so the folder holds exactly one onboarding.
    """
    contents: dict[str, Any] = {
        ONBOARDING_FILE: list(onboarding.rows),
        **onboarding.files,
        LEFT_OUT_FILE: [item.to_json() for item in onboarding.left_out],
    }
    written = []
    for relative, content in contents.items():
        path = output / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(content), encoding="utf-8")
        written.append(path)
    keep = set(written)
    for folder in _GENERATED_DIRS:
        for stale in sorted((output / folder).rglob("*")):
            if stale.is_file() and stale not in keep:
                stale.unlink()
    return written


def render(content: Any) -> str:
    """A file's text: text as it is, anything else as indented JSON; one final newline."""
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    return f"{text}\n"
