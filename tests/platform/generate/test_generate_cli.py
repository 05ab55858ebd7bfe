"""`medallion generate` writes exactly what the generator returns for the same config."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

from medallion.platform.generate import GeneratorConfig, generate, read_generated


def test_generate_command_writes_the_generated_data(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "medallion", "generate", "--no-load", "--days", "2",
         "--scale", "0.05", "--seed", "7", "--start-date", "2026-11-01",
         "--storage-root", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )

    assert result.returncode == 0, result.stderr
    written = read_generated(tmp_path / "_system" / "generate" / "data")
    expected = generate(GeneratorConfig(seed=7, scale=0.05, days=2, start_date=date(2026, 11, 1)))
    assert written == expected
