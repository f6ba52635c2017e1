"""The package's layers (the map is fomaml_utils/__init__.py): a module imports only from its own layer or lower
ones, the import graph has no cycle, and every module imports on its own in a fresh interpreter."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fomaml_utils"
# Lowest first. The top-level package itself is only a docstring and a version string.
LAYERS = {"fomaml_utils": 0, "seeding": 0, "data": 1, "algorithms": 2, "training": 3, "companions": 4, "tools": 5}
LAYER_NAMES = {0: "seeding", 1: "data", 2: "algorithms", 3: "training", 4: "companions", 5: "tools"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def layer(name: str) -> int | None:
    """The layer of a module of the package, by its first name below fomaml_utils; None if it has none."""
    parts = name.split(".")
    return LAYERS.get(parts[1] if len(parts) > 1 else parts[0])


def layer_name(name: str) -> str:
    return LAYER_NAMES[layer(name)]


def _resolve(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The fomaml_utils modules an import statement of ``module`` loads: for ``from P import n``, the submodule
    P.n when there is one, else P itself (whose __init__ runs)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "fomaml_utils"]
    base = node.module or ""
    if node.level:  # relative: from the importing module's package
        package = module if is_package(module) else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    if base.split(".")[0] != "fomaml_utils":
        return []
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _imports(module: str, tree: ast.AST, module_level_only: bool) -> list[tuple[str, int]]:
    """(imported module, line) of every import of the package in ``tree``. ``module_level_only``: the imports
    that run when the module is imported (not in function bodies, nor under ``if TYPE_CHECKING:``)."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.extend((target, node.lineno) for target in _resolve(module, node))
        if module_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if module_level_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


TREES = {name: ast.parse(path.read_text(encoding="utf-8"), filename=str(path)) for name, path in MODULES.items()}


def test_every_module_is_in_a_layer():
    assert "fomaml_utils.seeding" in MODULES and len(MODULES) > 30
    outside = [name for name in MODULES if layer(name) is None]
    assert not outside, f"modules in no layer (tests/test_layout.py LAYERS, fomaml_utils/__init__.py): {outside}"


def test_no_module_imports_a_higher_layer():
    wrong = []
    for name, tree in TREES.items():
        for target, line in _imports(name, tree, module_level_only=False):
            if target not in MODULES:
                wrong.append(f"{name} (line {line}) imports {target}, which is no module of the package")
            elif layer(target) > layer(name):
                wrong.append(f"{name} (layer {layer_name(name)}) imports {target} (line {line}), of the higher "
                             f"layer {layer_name(target)}")
    assert not wrong, "a module imports only from its own layer or lower ones:\n" + "\n".join(wrong)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_names_the_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_module_level_import_graph_has_no_cycle():
    graph = {name: {t for t, _ in _imports(name, tree, module_level_only=True) if t != name}
             for name, tree in TREES.items()}
    cycle = _cycle(graph)
    assert cycle is None, "module-level imports form a cycle: " + " -> ".join(cycle)


def test_only_init_and_seeding_sit_directly_in_the_package():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "seeding.py"))
    assert not loose, f"put these modules in their layer's subpackage (fomaml_utils/__init__.py has the map): {loose}"


def test_git_ignores_no_module_of_the_package():
    """.gitignore's data/ (the MNIST folder) once hid fomaml_utils/data/ from git."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [str(p.relative_to(ROOT)) for p in MODULES.values()]
    result = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and not result.stdout, f"git ignores: {result.stdout.split()}"


def test_every_subpackage_is_a_layer_with_an_init():
    folders = sorted(p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert [p.name for p in folders] == sorted(n for n in LAYERS if n not in ("fomaml_utils", "seeding"))
    assert all((p / "__init__.py").is_file() for p in folders)


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_imports_alone_in_a_fresh_interpreter(name):
    """A partially initialised module (an import cycle) fails here even when the test run's import order hides it."""
    result = _python(f"import {name} as m, pathlib, sys; "
                     f"sys.exit(0 if pathlib.Path(m.__file__).resolve() == pathlib.Path({str(MODULES[name])!r}) "
                     f"else 'imported from ' + m.__file__)")
    assert result.returncode == 0, f"python -c 'import {name}' failed:\n{result.stderr[-3000:]}"


def _is_command(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)


def test_no_package_imports_a_command_module_when_imported():
    """``python -m P.M`` imports the package P first; had P imported M already, runpy warns and runs M twice."""
    wrong = [f"{name} imports {target}" for name, tree in TREES.items() if is_package(name)
             for target, _ in _imports(name, tree, module_level_only=True)
             if target in TREES and _is_command(TREES[target])]
    assert not wrong, "a package's __init__ imports a module that runs as a command:\n" + "\n".join(wrong)


def test_the_mnist_command_does_not_import_torch():
    """``python -m fomaml_utils.data.mnist`` returns in a fraction of a second when the data is there: the data
    package imports the names it re-exports only on first use."""
    result = _python("import sys, fomaml_utils.data.mnist; sys.exit('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr or "importing fomaml_utils.data.mnist imported torch"


@pytest.mark.parametrize("package", ["fomaml_utils.data", "fomaml_utils.algorithms", "fomaml_utils.training",
                                     "fomaml_utils.companions", "fomaml_utils.tools"])
def test_every_name_a_subpackage_exports_is_there(package):
    module = __import__(package, fromlist=["__all__"])
    assert len(set(module.__all__)) == len(module.__all__)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not have: {missing}"
