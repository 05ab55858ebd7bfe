"""Every notebook in notebooks/ keeps the thin entry-point contract.

1. a markdown header that lists every parameter;
2. on Databricks only, the same cell in every notebook: ``%pip install`` the wheel the job
   parameter ``wheel`` names (serverless compute), then ``dbutils.library.restartPython()``;
3. a code cell tagged ``parameters`` that only assigns string defaults;
4. a cell that, only when DATABRICKS_RUNTIME_VERSION is set, declares a widget for each name
   (``dbutils.widgets.text(name, default)``, so the notebook runs when opened on a cluster) and
   then reads the same names from the widgets;
5. then calls into ``medallion``: no ``def``, no ``class``, no ``sys.path`` tricks, and never
   ``databricks.sdk.runtime`` (it raises or hangs off Databricks).
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from medallion.lakehouse.settings import repo_root

NOTEBOOKS = sorted((repo_root() / "notebooks").rglob("*.ipynb"))


def code(cell: nbformat.NotebookNode) -> ast.Module:
    source: str = cell.source
    return ast.parse(source)


def parameter_names(cell: nbformat.NotebookNode) -> list[str]:
    names = []
    for statement in code(cell).body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)):
            raise AssertionError(f"parameters cell: expected `name = \"default\"` lines, found "
                                 f"{ast.unparse(statement)!r}")
        names.append(statement.targets[0].id)
    return names


def widget_reads(cell: nbformat.NotebookNode) -> list[str] | None:
    """Names declared as widgets with their defaults, then assigned from them, under the guard.

    The guard's body must be ``dbutils.widgets.text("<name>", <name>)`` for each name, then
    ``<name> = dbutils.widgets.get("<name>")`` for the same names in the same order.
    """
    module = code(cell)
    guards = [s for s in module.body if isinstance(s, ast.If)
              and "DATABRICKS_RUNTIME_VERSION" in ast.unparse(s.test)]
    if len(guards) != 1 or guards[0].orelse:
        return None
    declared: list[str] = []
    read: list[str] = []
    for statement in guards[0].body:
        if isinstance(statement, ast.Expr) and not read:
            call = ast.unparse(statement.value).replace("'", '"')
            arguments = statement.value.args if isinstance(statement.value, ast.Call) else []
            name = arguments[1].id if len(arguments) == 2 and isinstance(
                arguments[1], ast.Name) else ""
            if call != f'dbutils.widgets.text("{name}", {name})':
                return None
            declared.append(name)
        elif isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
            name = statement.targets[0].id
            if ast.unparse(statement.value).replace("'", '"') != f'dbutils.widgets.get("{name}")':
                return None
            read.append(name)
        else:
            return None
    return read if read == declared else None


def test_the_repository_has_notebooks() -> None:
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(repo_root())))
def test_notebook_keeps_the_entry_point_contract(path: Path) -> None:
    cells = nbformat.read(path, as_version=4).cells  # type: ignore[no-untyped-call]
    header, _install, parameters, widgets, *rest = cells

    assert header.cell_type == "markdown"
    assert header.source.startswith("# ")
    assert parameters.cell_type == "code"
    assert "parameters" in parameters.metadata.get("tags", [])
    names = parameter_names(parameters)
    assert names, "a notebook takes at least one parameter"
    for name in names:
        assert f"`{name}`" in header.source, f"header does not document parameter {name!r}"
    assert widget_reads(widgets) == names

    body = "\n".join(cell.source for cell in rest if cell.cell_type == "code")
    tree = ast.parse(body)
    definitions = [n for n in ast.walk(tree)
                   if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    assert definitions == [], "logic belongs in src/medallion, not in notebooks"
    assert "sys.path" not in body
    assert "databricks.sdk.runtime" not in body
    imported = {alias.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                for alias in n.names if n.module and n.module.startswith("medallion")}
    assert imported, "a notebook calls into the medallion package"


def test_every_notebook_first_installs_the_wheel_on_databricks_then_restarts_python() -> None:
    installs = {nbformat.read(path, as_version=4).cells[1].source for path in NOTEBOOKS}  # type: ignore[no-untyped-call]
    assert len(installs) == 1, "the install cell is the same in every notebook"
    (guard,) = [s for s in ast.parse(installs.pop()).body if isinstance(s, ast.If)]
    assert ast.unparse(guard.test) == "os.environ.get('DATABRICKS_RUNTIME_VERSION')"
    declare, only_with_a_wheel = guard.body
    assert ast.unparse(declare) == "dbutils.widgets.text('wheel', '')"
    assert isinstance(only_with_a_wheel, ast.If)
    assert ast.unparse(only_with_a_wheel.test) == "dbutils.widgets.get('wheel')"
    assert [ast.unparse(s) for s in only_with_a_wheel.body] == [
        "get_ipython().run_line_magic('pip', 'install --quiet ' + dbutils.widgets.get('wheel'))",
        "dbutils.library.restartPython()",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(repo_root())))
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    cells = nbformat.read(path, as_version=4).cells  # type: ignore[no-untyped-call]
    assert [c.outputs for c in cells if c.cell_type == "code" and c.outputs] == []
