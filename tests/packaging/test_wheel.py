"""The wheel a cluster installs: slim requirements, and the config inside it as package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from medallion.settings import config_dir, repo_root

# What the local platform brings and a Databricks runtime must keep its own of (or never needs).
LOCAL_ONLY = {
    "pyspark", "delta-spark", "pandas", "papermill", "nbformat", "nbclient", "ipykernel",
    "jupyter-client", "fakesnow", "mlflow", "psutil", "resvg-py", "databricks-bundles",
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
