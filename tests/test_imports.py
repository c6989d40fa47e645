"""The project's import graph has no cycles (module-level, function-level and TYPE_CHECKING imports all
count), and the API never imports worker code.

The graph is built with the standard library (`ast`, `graphlib`): every `import` / `from ... import`
in every module of the project's packages, resolved to the deepest project module it names.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Every top-level package of the project that exists in this checkout.
PACKAGES = [p.name for p in sorted(ROOT.iterdir()) if (p / "__init__.py").is_file() and p.name != "tests"]


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path) -> set[str]:
    """Dotted names `module` imports (absolute, relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b`: the module a.b if there is one, else (a name in a) the module a.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {resolve(name) for name in _imported(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def test_the_graph_sees_the_project() -> None:
    graph = import_graph()
    assert {"api", "shared", "workers"} <= set(PACKAGES)
    assert "workers.engines.vllm_start" in graph["workers.engines.vllm_engine"]
    assert "shared.tasks" in graph["shared.constants"]
    assert "workers.runtime" in graph["workers.metrics"]  # a TYPE_CHECKING import counts too


def test_no_import_cycles() -> None:
    try:
        order = list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")
    assert len(order) == len(import_graph())


def test_a_cycle_would_be_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(graph).static_order())


def test_the_api_never_imports_worker_code() -> None:
    graph = import_graph()
    for module, imported in graph.items():
        if module == "api" or module.startswith("api."):
            assert not {m for m in imported if m == "workers" or m.startswith("workers.")}, module
