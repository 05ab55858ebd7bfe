"""The at-scale benchmark's report: day 1's table, with and without the bare PySpark baseline."""

from __future__ import annotations

import pytest

from benchmarks.at_scale import BEHAVIOR, LayerTimes, print_report
from benchmarks.bare_day import LAYERS
from benchmarks.data import Sizes

BEHAVIOR_TABLE = f"bronze.{BEHAVIOR}"  # the table whose rate the report prints


def day_one_table(capsys: pytest.CaptureFixture[str], *, bare: bool) -> list[str]:
    """The lines of the report's day-1 table, for two steps a layer timed at 2 s and 3 s (bare
    PySpark 1 s each)."""
    framework = {layer: LayerTimes({f"{layer}.a": 2.0, f"{layer}.b": 3.0}) for layer in LAYERS}
    framework["bronze"] = LayerTimes({BEHAVIOR_TABLE: 2.0, "bronze.b": 3.0}, {BEHAVIOR_TABLE: 1000})
    baseline = {layer: dict.fromkeys(times.seconds, 1.0) for layer, times in framework.items()}
    later = {layer: LayerTimes({f"{layer}.a": 1.0}) for layer in LAYERS}
    print_report(Sizes(10, 5, 2, 3), 1.0, framework, baseline if bare else None,
                 LayerTimes({BEHAVIOR_TABLE: 1.0}), later, later, None)
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("day 1"))
    return lines[start:lines.index("", start)]


def test_without_a_baseline_day_one_shows_the_framework_seconds_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert day_one_table(capsys, bare=False) == [
        "day 1, framework (no bare PySpark baseline: --skip-bare)",
        "  layer       framework s",
        "  bronze              5.0",
        "    bronze.customer_behavior        2.0",
        "    bronze.b                        3.0",
        "  silver              5.0",
        "    silver.a                        2.0",
        "    silver.b                        3.0",
        "  gold                5.0",
        "    gold.a                          2.0",
        "    gold.b                          3.0",
        "  build              15.0",
    ]


def test_with_a_baseline_day_one_shows_each_steps_ratio_to_bare_pyspark(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert day_one_table(capsys, bare=True) == [
        "day 1, framework vs bare PySpark (same raw files, same session)",
        "  layer       framework s   bare s   ratio   target <= 1.3x",
        "  bronze              5.0      2.0   2.50x",
        "    bronze.customer_behavior        2.0      1.0   2.00x",
        "    bronze.b                        3.0      1.0   3.00x",
        "  silver              5.0      2.0   2.50x",
        "    silver.a                        2.0      1.0   2.00x",
        "    silver.b                        3.0      1.0   3.00x",
        "  gold                5.0      2.0   2.50x",
        "    gold.a                          2.0      1.0   2.00x",
        "    gold.b                          3.0      1.0   3.00x",
        "  build              15.0      6.0   2.50x",
    ]
