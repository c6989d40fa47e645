"""The shape of `api/` (see `api/__init__.py`): features as router/protocol/service, routes reach
settings, sessions and services only through `api.deps`, and no module of `api/` imports in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parents[2] / "api"
#: Folders of `api/` that serve every feature rather than being one (no routes of their own):
#: `auth` turns a request's key into its principal for every `/v1` router.
CROSS_CUTTING = frozenset({"auth"})
#: Every other folder of `api/` is a feature.
FEATURES = sorted(
    p.name for p in API.iterdir() if p.is_dir() and not p.name.startswith("_") and p.name not in CROSS_CUTTING
)


def test_the_features_are_found() -> None:
    assert {"jobs", "webhooks", "queues", "health", "metrics", "openai"} <= set(FEATURES)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(API.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_cross_cutting_packages_have_no_routes() -> None:
    for name in CROSS_CUTTING:
        assert not (API / name / "router.py").exists(), f"api/{name} has routes: make it a feature"


def test_every_feature_has_a_thin_router() -> None:
    for feature in FEATURES:
        router = API / feature / "router.py"
        assert router.is_file(), f"api/{feature}/router.py is missing"
        source = router.read_text()
        assert "app.state" not in source, f"{router.name} of {feature} reads app.state (use api.deps)"
        direct = [name for name in _imports(router) if name.startswith(("sqlalchemy", "shared.db"))]
        assert not direct, f"api/{feature}/router.py reaches the database itself: {direct}"


def test_sessions_are_opened_only_by_the_app_and_deps() -> None:
    for path in API.rglob("*.py"):
        if path.name in {"app.py", "deps.py"} and path.parent == API:
            continue
        assert "get_sessionmaker" not in path.read_text(), f"{path} opens sessions itself"


def test_no_import_cycle_within_api() -> None:
    modules = {_module(path): path for path in API.rglob("*.py")}
    graph = {name: {m for m in _imports(p) if m in modules and m != name} for name, p in modules.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, f"import cycle: {' -> '.join([*visiting[visiting.index(name) :], name])}"
        if name in done:
            return
        visiting.append(name)
        for target in sorted(graph[name]):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
