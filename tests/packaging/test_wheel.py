"""The wheel a cluster installs: slim requirements, the config inside it as package data, and
enough, with only Spark and Delta added, to run a notebook task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import date
from email.parser import Parser
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medallion.lakehouse.environment import Endpoints, Environment
from medallion.lakehouse.pipelines.ingest import ingest_fx
from medallion.lakehouse.settings import config_dir, jars_dir, repo_root
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack.fx_api import CURRENCIES, FxApiServer

# What the local platform brings and a Databricks runtime must keep its own of (or never needs).
LOCAL_ONLY = {
    "pyspark", "delta-spark", "pandas", "papermill", "nbformat", "nbclient", "ipykernel",
    "jupyter-client", "fakesnow", "mlflow", "psutil", "resvg-py", "databricks-bundles",
    "starlette", "uvicorn", "nbconvert", "matplotlib",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `make wheel` builds, built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    uv = Path(sys.executable).parent / "uv"
    subprocess.run([str(uv), "build", "--wheel", "-q", "-o", str(out), str(repo_root())],
                   check=True, capture_output=True, text=True)
    (built,) = out.glob("medallion_lakehouse-*.whl")
    return built


def _requirements(wheel: Path) -> tuple[set[str], set[str]]:
    """The names a plain install requires, and those only the ``local`` extra does."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(metadata).decode())
    plain, local = set(), set()
    for requirement in message.get_all("Requires-Dist") or []:
        name = requirement.split(";")[0].split("[")[0].split("=")[0].split("<")[0].split(">")[0]
        if "extra ==" not in requirement:
            plain.add(name.strip().lower())
        elif "extra == \"local\"" in requirement:
            local.add(name.strip().lower())
    return plain, local


def test_a_plain_install_requires_nothing_a_databricks_runtime_brings(wheel: Path) -> None:
    plain, local = _requirements(wheel)

    assert plain & LOCAL_ONLY == set()
    assert local >= LOCAL_ONLY


def test_the_config_travels_in_the_wheel_as_package_data(wheel: Path) -> None:
    expected = {
        f"medallion/config/{path.relative_to(config_dir()).as_posix()}"
        for path in config_dir().rglob("*")
        if path.suffix in {".json", ".yml"}
    }
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.startswith("medallion/config/")}

    assert len(expected) > 20
    assert packed == expected


# Run in the fresh environment: the notebook's code cells in order, in one namespace, with the
# parameters cell's values overridden the way a job's parameters override them.
RUN_NOTEBOOK = """
import json, sys
notebook, parameters = sys.argv[1], json.loads(sys.argv[2])
namespace = {"__name__": "__main__"}
for cell in json.load(open(notebook))["cells"]:
    if cell["cell_type"] != "code":
        continue
    exec("".join(cell["source"]), namespace)
    if "parameters" in cell["metadata"].get("tags", []):
        namespace.update(parameters)
print(json.dumps({"rows_written": namespace["result"].rows_written}))
"""


def test_a_notebook_task_runs_on_the_wheel_with_only_spark_and_delta_added(
    wheel: Path, tmp_path: Path, spark: SparkSession
) -> None:
    """A fresh virtualenv: the wheel, then pyspark and delta-spark as a runtime has them.

    Under ``make test``, uv finds pyspark built once in the Makefile's wheelhouse
    (``UV_FIND_LINKS``); without it uv builds PyPI's source distribution again, ~25 s."""
    uv = str(Path(sys.executable).parent / "uv")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    pins = {name: version for name, version in
            (line.split("==") for line in (repo_root() / "requirements.lock").read_text()
             .splitlines() if line.startswith(("pyspark==", "delta-spark==")))}
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), str(wheel),
         f"pyspark=={pins['pyspark']}", f"delta-spark=={pins['delta-spark']}",
         "--constraint", str(repo_root() / "requirements.lock")],
        check=True, capture_output=True, text=True,
    )
    installed = subprocess.run([uv, "pip", "freeze", "--python", str(python)],
                               check=True, capture_output=True, text=True).stdout
    assert {line.split("==")[0].lower() for line in installed.splitlines()} & (
        LOCAL_ONLY - {"pyspark", "delta-spark", "pandas"}) == set()
    root = tmp_path / "lakehouse"
    day = date(2026, 11, 2)
    with FxApiServer(seed=42) as fx_api:
        endpoints = Endpoints(fx_api_url=fx_api.url)
        ingest_fx(Environment.resolve(StorageRoot(root), endpoints=endpoints), day)

    result = subprocess.run(
        [str(python), "-c", RUN_NOTEBOOK, str(repo_root() / "notebooks/bronze/load_bronze.ipynb"),
         json.dumps({"run_date": day.isoformat(), "storage_root": str(root),
                     "table": "bronze.fx_rates", "run_id": "wheel-test"})],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False,
        env={**os.environ, "MEDALLION_JARS_DIR": str(jars_dir())},
    )

    assert result.returncode == 0, result.stderr[-3000:]
    # The JVM logs errors only (the wheel's spark-log4j2.properties): what a kernel would show.
    chatter = [line for line in result.stderr.splitlines()
               if " WARN " in line or "log4j" in line or "log level" in line]
    assert chatter == []
    assert json.loads(result.stdout.splitlines()[-1]) == {"rows_written": len(CURRENCIES)}
    bronze = spark.read.format("delta").load(str(root / "bronze" / "fx_rates"))
    assert sorted(row["currency"] for row in bronze.collect()) == sorted(CURRENCIES)
