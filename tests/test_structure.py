"""The package's shape: refreg never imports theory, its import graph has no cycles, every module's docstring
opens with the concept it holds, and everything imported is declared in pyproject.toml."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "refreg"

# import name -> distribution name in pyproject.toml (where the two differ)
DISTRIBUTION = {
    "array_api_compat": "array-api-compat",
    "array_api_strict": "array-api-strict",
    "sklearn": "scikit-learn",
    "distributed": "dask",
    "cupy": "cupy-cuda12x",
    "pytorch_cpr": "pytorch-cpr",
}
FOLDERS = ("refreg", "theory", "tests", "bench", "examples")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, *, top_level_only: bool, known: set[str] | None = None) -> set[str]:
    """Absolute module names imported by ``path`` (module level only, or anywhere in the file).

    ``from a import b`` counts as an import of ``a.b`` when ``a.b`` is one of the ``known`` modules, else of
    ``a`` (its attribute ``b``); without ``known`` both are listed.
    """
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if known is None:
                    found |= {node.module, sub}
                else:
                    found.add(sub if sub in known else node.module)
    return found


def test_refreg_never_imports_theory_or_an_autodiff_library():
    for name, path in modules().items():
        for imported in imports(path, top_level_only=False):
            top = imported.split(".")[0]
            assert top not in ("theory", "torch", "jax", "autograd"), f"{name} imports {imported}"


def test_import_graph_has_no_cycles():
    """Module-level imports between refreg's modules form a DAG (the order Python executes them in)."""
    mods = modules()
    graph = {
        name: sorted(
            m
            for m in imports(path, top_level_only=True, known=set(mods))
            if m in mods and m != name
        )
        for name, path in mods.items()
    }
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*stack, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_docstring_opens_with_its_concept(name):
    doc = ast.get_docstring(ast.parse(modules()[name].read_text()))
    assert doc, f"{name} has no module docstring"
    first = doc.splitlines()[0]
    assert 20 <= len(first) <= 120 and not first.startswith(" "), f"{name}: {first!r}"


@pytest.mark.parametrize("package", ["cpr", "pathprox", "sparse"])
def test_method_packages_hold_one_concept_per_small_module(package):
    for path in sorted((PACKAGE / package).glob("*.py")):
        n = len(path.read_text().splitlines())
        assert n <= 320, f"{path.relative_to(ROOT)} has {n} lines"


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        names += extra
    out = set()
    for spec in names:
        for stop in "[<>=!~ ;":
            spec = spec.split(stop)[0]
        out.add(spec.strip().lower())
    return out


def test_everything_imported_is_declared():
    names = declared()
    files = [p for folder in FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))]
    local = set(FOLDERS) | {p.stem for p in files}  # the repository's own modules and scripts
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    missing = {}
    for path in files:
        for imported in imports(path, top_level_only=False):
            top = imported.split(".")[0]
            if top in stdlib or top in local:
                continue
            if DISTRIBUTION.get(top, top).lower() not in names:
                missing.setdefault(top, str(path.relative_to(ROOT)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
