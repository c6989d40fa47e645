"""The API must not import the workers, torch or vllm, directly or through anything it imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = ("workers", "torch", "vllm", "transformers")

PROBE = """
import json, sys
import api.app
from api.app import create_app
create_app().openapi()
print(json.dumps(sorted(sys.modules)))
"""


def test_api_does_not_import_workers_torch_or_vllm() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    modules = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "api.app" in modules
    leaked = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert not leaked, f"api pulled in forbidden modules: {leaked[:20]}"
