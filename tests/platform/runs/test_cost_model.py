"""The cost model: declared per target, validated, and priced by its formula."""

from __future__ import annotations

from pathlib import Path

import pytest

from medallion.lakehouse.errors import ConfigError
from medallion.platform.bundle import load_bundle
from medallion.platform.runs.cost import CostModel
from medallion.platform.runs.recorder import RunRecorder
from medallion.platform.runs.summary import build_run_summary
from tests.platform.runs.conftest import FIXTURE_BUNDLE, RecordedRun

REPO_ROOT = Path(__file__).parents[3]


def test_local_target_prices_cpu_seconds() -> None:
    model = RunRecorder.for_bundle(load_bundle(FIXTURE_BUNDLE)).cost_model
    assert model == CostModel(kind="cpu_seconds", usd_per_cpu_hour=36.0)
    assert model.estimate(duration_seconds=999.0, cpu_seconds=90.0) == 90.0 / 3600 * 36.0


def test_cluster_target_prices_dbu_by_wall_time() -> None:
    model = RunRecorder.for_bundle(load_bundle(FIXTURE_BUNDLE, "cluster")).cost_model
    assert model == CostModel(kind="dbu", dbu_per_hour=2.0, workers=3.0, usd_per_dbu=0.5)
    assert model.estimate(duration_seconds=5400.0, cpu_seconds=7.0) == 2.0 * 3.0 * 1.5 * 0.5


@pytest.mark.parametrize(("target", "expected"), [
    ("local", CostModel(kind="cpu_seconds", usd_per_cpu_hour=0.05)),
    ("dev", CostModel(kind="dbu", dbu_per_hour=0.75, workers=2.0, usd_per_dbu=0.15)),
    ("prod", CostModel(kind="dbu", dbu_per_hour=0.75, workers=4.0, usd_per_dbu=0.15)),
])
def test_repository_targets_declare_their_cost_model(target: str, expected: CostModel) -> None:
    assert RunRecorder.for_bundle(load_bundle(REPO_ROOT, target)).cost_model == expected


def test_summary_under_a_dbu_model_prices_each_task_and_the_run(
        recorded_run: RecordedRun) -> None:
    model = CostModel(kind="dbu", dbu_per_hour=2.0, workers=3.0, usd_per_dbu=0.5)
    result = recorded_run.result
    summary = build_run_summary(result, job=None, target="cluster", code_version="v",
                                cost_model=model)
    assert {t["task_key"]: t["cost_usd"] for t in summary["tasks"]} == {
        key: round(2.0 * 3.0 * (run.duration_seconds / 3600) * 0.5, 6)
        for key, run in result.tasks.items()
    }
    assert summary["totals"]["cost_usd"] == round(
        2.0 * 3.0 * (result.duration_seconds / 3600) * 0.5, 6)


@pytest.mark.parametrize(("raw", "message"), [
    ({"kind": "gpu"}, "cost_model.kind: expected one of cpu_seconds, dbu, found 'gpu'"),
    ({"kind": "dbu", "dbu_per_hour": 1, "workers": 2},
     r"cost_model.usd_per_dbu: expected a number >= 0, found None"),
    ({"kind": "cpu_seconds", "usd_per_cpu_hour": -1},
     r"cost_model.usd_per_cpu_hour: expected a number >= 0, found -1"),
    ({"kind": "cpu_seconds", "usd_per_cpu_hour": 1, "workers": 2},
     r"unknown key\(s\) workers for kind 'cpu_seconds'"),
    ("cheap", "expected a mapping with 'kind', found 'cheap'"),
])
def test_a_bad_cost_model_names_the_key(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CostModel.parse(raw)
