"""The package's import graph: no module imports, at any depth, a module that imports it back,
and the two halves depend one way only: the local platform on the lakehouse, never back.

Every ``import`` counts: those inside functions (a cycle hidden in a function is still a cycle:
whichever module loads first sees the other half-initialised) and those under
``if TYPE_CHECKING:`` (an arrow back up for the type checker is one for the reader too).

And what importing it costs: no kernel or runner pulls in a dependency that compiles parsers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import medallion

PACKAGE = Path(medallion.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The package's modules that module ``name`` imports (a submodule where one is named)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


def cycles() -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    graph = {name: sorted(imports_of(name)) for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for name in graph:
        if name not in index:
            visit(name)
    return groups


def test_the_walk_sees_imports_inside_functions_and_for_the_type_checker() -> None:
    # inside a function; under TYPE_CHECKING; a submodule
    assert "medallion.lakehouse.lineage" in imports_of("medallion.platform.jobs.engine")
    assert "medallion.lakehouse.quality.breaker" in imports_of("medallion.lakehouse.display")
    assert "medallion.lakehouse.lineage.steps" in imports_of("medallion.lakehouse.lineage.graph")


def test_no_import_cycle_in_the_package() -> None:
    assert cycles() == []


LAKEHOUSE, PLATFORM = "medallion.lakehouse", "medallion.platform"
# Where the environment is resolved, and where ``on_databricks`` is defined.
ASKS_WHERE_IT_RUNS = {"medallion.lakehouse.environment", "medallion.lakehouse.settings"}


def in_half(name: str, half: str) -> bool:
    return name == half or name.startswith(f"{half}.")


def test_every_module_is_in_one_of_the_two_halves() -> None:
    outside = {name for name in MODULES
               if not (in_half(name, LAKEHOUSE) or in_half(name, PLATFORM))}

    assert outside == {"medallion", "medallion.__main__"}


def test_the_lakehouse_half_never_imports_the_local_platform() -> None:
    offenders = {
        name: sorted(found for found in imports_of(name) if in_half(found, PLATFORM))
        for name in MODULES if in_half(name, LAKEHOUSE)
    }

    assert {name: found for name, found in offenders.items() if found} == {}


def names_used(name: str) -> set[str]:
    """Every name module ``name`` imports or refers to (``x``, ``a.x``, ``from a import x``)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            used.update(alias.name.rpartition(".")[2] for alias in node.names)
    return used


def test_only_the_resolver_asks_whether_it_runs_on_databricks() -> None:
    asking = {name for name in MODULES if "on_databricks" in names_used(name)}

    assert asking <= ASKS_WHERE_IT_RUNS
    assert "medallion.lakehouse.environment" in asking


# What every notebook kernel and every runner imports, in a fresh process.
HEAVY_IMPORTS = """
import sys
import medallion.lakehouse.pipelines.bronze, medallion.lakehouse.pipelines.silver
import medallion.lakehouse.pipelines.gold, medallion.platform.jobs.notebook, nbformat
print(",".join(sorted(name for name in ("lark", "rfc3987_syntax") if name in sys.modules)))
"""


def test_no_kernel_or_runner_compiles_jsonschemas_iri_grammars() -> None:
    """jsonschema imports its optional IRI checker, rfc3987-syntax, when it is installed, and that
    compiles ~35 Earley grammars: ~1.4 s of CPU per process. The lock leaves it out
    (pyproject.toml's [tool.uv]); a virtualenv installed before that keeps it until
    ``uv pip uninstall rfc3987-syntax lark``."""
    result = subprocess.run([sys.executable, "-c", HEAVY_IMPORTS], capture_output=True, text=True,
                            timeout=300, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
