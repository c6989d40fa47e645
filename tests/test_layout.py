"""The package boundaries of the layout: workers/ holds only what a worker runs, the API ships alone.

* `workers/` never imports the operator tooling (`textfleet/`) or the benchmark (`bench/`);
* `api/` never imports `workers/`, `textfleet/` or `bench/`; `shared/` imports none of the four;
* `textfleet` (the CLI every image runs) imports no worker code until a command that needs it runs,
  so the API image (no `workers/`) and the worker images (no `api/`) both run it; neither holds `bench/`.

Imports are read from the source (every `import`, also those inside functions), so a lazy import
cannot hide a crossing that only some code path would take.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> top-level packages of this project it must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "workers": ("textfleet", "bench", "api"),
    "api": ("workers", "textfleet", "bench"),
    "shared": ("workers", "textfleet", "bench", "api"),
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name `path` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def crossings(package: str) -> list[str]:
    """`file: module` for each import of `package` that crosses into a forbidden package."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in sorted(imported_modules(path)):
            if module.split(".")[0] in FORBIDDEN[package]:
                found.append(f"{path.relative_to(ROOT)}: {module}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_inside_their_layer(package: str) -> None:
    assert (ROOT / package / "__init__.py").is_file()
    assert crossings(package) == []


def test_the_scan_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from textfleet.dev import free_port\n    import bench.cli\n")
    assert imported_modules(module) == {"textfleet.dev", "bench.cli"}


#: What each image leaves out (see docker/ and tests/deploy), and what its entry point must import.
IMAGES = {
    "api": (("workers", "bench"), "from api.app import create_app; create_app().openapi()"),
    "worker": (("api", "bench"), "import workers.worker, workers.celery_app"),
}

PROBE = """
import json, sys
for absent in {absent!r}:
    sys.modules[absent] = None  # as if the image did not hold it: importing it raises ImportError
from typer.main import get_command
import textfleet.cli
commands = sorted(get_command(textfleet.cli.app).commands)  # every command registered, options parsed
{entry}
print(json.dumps({{"commands": commands, "modules": sorted(sys.modules)}}))
"""


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_each_image_runs_the_cli_without_the_packages_it_leaves_out(image: str) -> None:
    absent, entry = IMAGES[image]
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(absent=absent, entry=entry)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"api", "worker", "db", "models"} <= set(out["commands"])
    assert "bench" not in out["commands"]  # registered only where the bench package is installed
    heavy = sorted(m for m in out["modules"] if m.split(".")[0] in ("torch", "vllm", "transformers"))
    assert not heavy, f"{image}: importing the entry point pulled in {heavy[:10]}"


def test_the_cli_imports_no_worker_code_until_a_command_runs() -> None:
    probe = "import json, sys, textfleet.cli; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    modules = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "bench.cli" in modules  # a checkout registers `textfleet bench`
    leaked = sorted(m for m in modules if m.split(".")[0] in ("workers", "api", "torch", "vllm"))
    assert not leaked, f"`textfleet` pulled in {leaked[:20]}"


#: The style rule: one concept per module, none over this many lines (migrations are generated data).
MAX_MODULE_LINES = 400
PRODUCT_PACKAGES = ("api", "shared", "workers", "textfleet", "bench")


def test_no_product_module_is_over_the_line_limit() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in PRODUCT_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    assert len(sizes) > 50  # the scan sees the packages
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}
