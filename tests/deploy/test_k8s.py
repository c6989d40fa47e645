"""Kubernetes manifests: each overlay renders with kustomize, validates offline, and is wired right."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = REPO / "k8s" / "overlays"
OVERLAY_NAMES = ("cpu", "gpu")
WORKER_PORT = 9100

Manifest = dict[str, Any]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _render(overlay: str) -> list[Manifest]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        reason = "kubectl not found: cannot render the kustomize overlays"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: required)")
        pytest.skip(reason)
    result = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert all(isinstance(doc, dict) for doc in docs)
    return docs


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {name: _render(name) for name in OVERLAY_NAMES}


def _find(docs: list[Manifest], kind: str, name: str) -> Manifest:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind}/{name} in {[(d['kind'], d['metadata']['name']) for d in docs]}")


def _pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _containers(workload: Manifest) -> Iterator[dict[str, Any]]:
    yield from _pod_spec(workload).get("initContainers", [])
    yield from _pod_spec(workload)["containers"]


def _main_container(workload: Manifest) -> dict[str, Any]:
    containers: list[dict[str, Any]] = _pod_spec(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


def _command(container: dict[str, Any]) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def test_overlays_exist() -> None:
    for name in OVERLAY_NAMES:
        assert (OVERLAYS / name / "kustomization.yaml").is_file()


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_object_validates_offline(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    version = kubernetes_validate.latest_version()
    for doc in rendered[overlay]:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']}: {error.message}")
    namespaced = [d for d in rendered[overlay] if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"textfleet"}


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_application_is_in_every_overlay(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    for kind, name in [
        ("Namespace", "textfleet"),
        ("ConfigMap", "textfleet-config"),
        ("PersistentVolumeClaim", "textfleet-models"),
        ("Job", "textfleet-migrate"),
        ("Deployment", "textfleet-api"),
        ("Service", "textfleet-api"),
        ("Deployment", "textfleet-worker-generate"),
        ("Deployment", "textfleet-worker-classify"),
    ]:
        _find(docs, kind, name)
    config = _find(docs, "ConfigMap", "textfleet-config")["data"]
    assert config["TEXTFLEET_WORKER_HTTP_PORT"] == str(WORKER_PORT)
    assert config["TEXTFLEET_ENVIRONMENT"] == "production"
    assert config["TEXTFLEET_MODELS_DIR"] == "/models"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_deployments_have_probes_and_resource_requests(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    workloads = [d for d in rendered[overlay] if d["kind"] in {"Deployment", "StatefulSet"}]
    assert workloads
    for workload in workloads:
        where = f"{overlay}: {workload['kind']}/{workload['metadata']['name']}"
        for container in _pod_spec(workload)["containers"]:
            assert "readinessProbe" in container, where
            assert "livenessProbe" in container, where
        for container in _containers(workload):
            requests = container.get("resources", {}).get("requests", {})
            assert {"cpu", "memory"} <= set(requests), f"{where}/{container['name']}: {requests}"
            assert "memory" in container["resources"].get("limits", {}), f"{where}/{container['name']}"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_workers_probe_the_side_port(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    for name, queue in [("textfleet-worker-generate", "generate"), ("textfleet-worker-classify", "classify")]:
        workload = _find(rendered[overlay], "Deployment", name)
        worker = _main_container(workload)
        assert _command(worker) == ["textfleet", "worker", "--queues", queue]
        ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            http = worker[probe]["httpGet"]
            assert http["path"] == "/healthz", (name, probe)
            assert ports.get(http["port"], http["port"]) == WORKER_PORT, (name, probe)
        init = _pod_spec(workload)["initContainers"]
        assert [_command(c) for c in init] == [["textfleet", "models", "prepare"]], name
        assert init[0]["image"] == worker["image"], name
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in _pod_spec(workload)["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {"textfleet-models"}, name


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_api_probes(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    api = _main_container(_find(rendered[overlay], "Deployment", "textfleet-api"))
    assert _command(api) == ["textfleet", "api"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "textfleet-api" in api["image"]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_migration_job_runs_db_upgrade(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    job = _find(rendered[overlay], "Job", "textfleet-migrate")
    container = _main_container(job)
    assert _command(container) == ["textfleet", "db", "upgrade"]
    assert "textfleet-api" in container["image"]
    assert _pod_spec(job)["restartPolicy"] in {"OnFailure", "Never"}


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_pods_run_as_non_root(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    for doc in rendered[overlay]:
        if doc["kind"] in {"Deployment", "Job"} and doc["metadata"]["name"].startswith("textfleet-"):
            assert _pod_spec(doc)["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_secrets_come_from_the_secret(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    assert not [d for d in rendered[overlay] if d["kind"] == "Secret"], "secrets are created out of band"
    for name in ("textfleet-api", "textfleet-worker-generate", "textfleet-worker-classify"):
        env = {e["name"]: e for e in _main_container(_find(rendered[overlay], "Deployment", name))["env"]}
        for var in ("TEXTFLEET_DATABASE_URL", "TEXTFLEET_REDIS_URL", "TEXTFLEET_WEBHOOK_SECRET"):
            assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "textfleet-secrets", (name, var)


def test_cpu_overlay_is_self_contained(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["cpu"]
    redis = _find(docs, "Deployment", "redis")
    assert _find(docs, "Service", "redis")["spec"]["ports"][0]["port"] == 6379
    postgres = _find(docs, "StatefulSet", "postgres")
    assert _find(docs, "Service", "postgres")["spec"]["ports"][0]["port"] == 5432
    assert _main_container(redis)["image"].startswith("redis:")
    assert _main_container(postgres)["image"].startswith("postgres:")
    env = {e["name"]: e for e in _main_container(postgres)["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "textfleet-secrets"
    for name in ("textfleet-worker-generate", "textfleet-worker-classify"):
        for container in _containers(_find(docs, "Deployment", name)):
            assert "worker-cpu" in container["image"], (name, container["image"])
            assert "nvidia.com/gpu" not in container["resources"].get("limits", {}), name


def test_gpu_overlay_puts_generation_on_a_gpu(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["gpu"]
    generate = _find(docs, "Deployment", "textfleet-worker-generate")
    worker = _main_container(generate)
    assert str(worker["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    assert "worker-gpu" in worker["image"]
    pod = _pod_spec(generate)
    assert pod["nodeSelector"], "the generation worker must be pinned to GPU nodes"
    assert any(t.get("key") == "nvidia.com/gpu" for t in pod["tolerations"])
    # Only the generation worker holds a GPU; classifiers stay on the CPU image.
    classify = _find(docs, "Deployment", "textfleet-worker-classify")
    for container in _containers(classify):
        assert "worker-cpu" in container["image"]
        assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    # Managed Redis/PostgreSQL: none in the cluster.
    names = {d["metadata"]["name"] for d in docs}
    assert not names & {"redis", "postgres"}
