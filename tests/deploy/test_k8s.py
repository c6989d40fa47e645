"""Kubernetes manifests: each overlay renders with kustomize, validates offline, and is wired right.

Core objects validate with kubernetes_validate (strict); KEDA's ScaledObjects and
TriggerAuthentications against KEDA's CRD schemas (/work/shared/schemas/keda). Beyond shape, the
tests hold the deployment's promises: workers scale on outstanding jobs (never on the waiting list
alone), the GPU worker scales to zero, scale-down is gentle, a worker's grace period outlasts its
drain, probes never shell out to `celery inspect`, and every pod is covered by PDBs and
NetworkPolicies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = REPO / "k8s" / "overlays"
OVERLAY_NAMES = ("cpu", "gpu")
WORKER_PORT = 9100
API_PORT = 8000
KEDA_SCHEMAS = REPO.parent / "shared" / "schemas" / "keda"
KEDA_CRDS = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}
#: Worker Deployment -> (queue, its main args).
WORKERS = {
    "textfleet-worker-generate": "generate",
    "textfleet-worker-classify": "classify",
    "textfleet-worker-webhooks": "webhooks",
}
#: Workers that load models (init container `models prepare`, the models volume).
MODEL_WORKERS = ("textfleet-worker-generate", "textfleet-worker-classify")
API_URL = "http://textfleet-api.textfleet.svc.cluster.local:8000"

Manifest = dict[str, Any]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _missing(reason: str) -> NoReturn:
    """Skip when a tool or file is missing here; in CI its absence is a failure."""
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def _render(overlay: str) -> list[Manifest]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        _missing("kubectl not found: cannot render the kustomize overlays")
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


def _of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def _config(docs: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = _find(docs, "ConfigMap", "textfleet-config")["data"]
    return data


def _pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only, the form these manifests use) matches `labels`."""
    assert not selector.get("matchExpressions"), "tests only understand matchLabels"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _policies_for(docs: list[Manifest], labels: dict[str, str], policy_type: str) -> list[Manifest]:
    return [
        p
        for p in _of_kind(docs, "NetworkPolicy")
        if policy_type in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], labels)
    ]


def _ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports", [])}


def _keda_schema(kind: str) -> dict[str, Any]:
    path = KEDA_SCHEMAS / KEDA_CRDS[kind]
    if not path.is_file():
        _missing(f"KEDA CRD not found at {path}")
    crd = yaml.safe_load(path.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _workers_concurrency(docs: list[Manifest], name: str) -> int:
    """Jobs one pod of worker `name` holds at once, as its manifests configure it."""
    args = _command(_main_container(_find(docs, "Deployment", name)))
    if "--concurrency" in args:
        return int(args[args.index("--concurrency") + 1])
    config = _config(docs)
    queue = WORKERS[name]
    if queue == "generate":
        for key in ("TEXTFLEET_GENERATE_CONCURRENCY", "TEXTFLEET_MAX_NUM_SEQS"):
            if key in config:
                return int(config[key])
        raise AssertionError(f"{name}: it holds what its engine holds, unknown here: set a concurrency")
    if queue == "classify":
        return int(config["TEXTFLEET_CLASSIFY_CONCURRENCY"])
    raise AssertionError(f"{name}: give it --concurrency so its ScaledObject target can match")


def test_overlays_exist() -> None:
    for name in OVERLAY_NAMES:
        assert (OVERLAYS / name / "kustomization.yaml").is_file()


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_object_validates_offline(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    version = kubernetes_validate.latest_version()
    for doc in rendered[overlay]:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # test_keda_objects_validate_against_the_crds
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
        ("HorizontalPodAutoscaler", "textfleet-api"),
        ("PodDisruptionBudget", "textfleet-api"),
        ("Deployment", "textfleet-worker-generate"),
        ("Deployment", "textfleet-worker-classify"),
        ("Deployment", "textfleet-worker-webhooks"),
        ("ScaledObject", "textfleet-worker-generate"),
        ("ScaledObject", "textfleet-worker-classify"),
        ("ScaledObject", "textfleet-worker-webhooks"),
        ("NetworkPolicy", "default-deny-ingress"),
    ]:
        _find(docs, kind, name)
    config = _config(docs)
    assert config["TEXTFLEET_WORKER_HTTP_PORT"] == str(WORKER_PORT)
    assert int(config["TEXTFLEET_WORKER_DRAIN_S"]) > 0
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
    for name, queue in WORKERS.items():
        workload = _find(rendered[overlay], "Deployment", name)
        worker = _main_container(workload)
        assert _command(worker)[:4] == ["textfleet", "worker", "--queues", queue], name
        ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            http = worker[probe]["httpGet"]
            assert http["path"] == "/healthz", (name, probe)
            assert ports.get(http["port"], http["port"]) == WORKER_PORT, (name, probe)
        # the side port listens on the pod IP, where the kubelet's probes reach it, not on all interfaces
        env = {e["name"]: e for e in worker.get("env", [])}
        host = env["TEXTFLEET_WORKER_HTTP_HOST"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert host == "status.podIP", name
        # a worker that exits (non-zero when it stopped by itself) is restarted
        assert _pod_spec(workload).get("restartPolicy", "Always") == "Always", name
        if name not in MODEL_WORKERS:
            assert "worker-webhooks" in worker["image"], (name, worker["image"])  # not the API image
            assert not _pod_spec(workload).get("initContainers"), name
            assert not _pod_spec(workload).get("volumes"), f"{name} needs no models volume"
            continue
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
    for name in ("textfleet-api", *WORKERS):
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


# --- KEDA: scaling on outstanding jobs ----------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_keda_objects_validate_against_the_crds(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    keda = [d for d in rendered[overlay] if d["apiVersion"].startswith("keda.sh/")]
    assert keda
    for doc in keda:
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        assert doc["kind"] in KEDA_CRDS, f"no schema for {doc['kind']}"
        validator = jsonschema.Draft7Validator(_keda_schema(doc["kind"]))
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, f"{overlay}: {doc['kind']}/{doc['metadata']['name']}: " + "; ".join(
            f"{list(e.absolute_path)}: {e.message}" for e in errors
        )
        assert doc["metadata"]["namespace"] == "textfleet"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_worker_scales_on_outstanding_jobs(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    scaled = _of_kind(docs, "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == set(WORKERS)
    for so in scaled:
        name = so["spec"]["scaleTargetRef"]["name"]
        where = f"{overlay}: ScaledObject/{so['metadata']['name']}"
        assert so["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment", where
        _find(docs, "Deployment", name)
        (trigger,) = so["spec"]["triggers"]
        assert trigger["type"] == "metrics-api", where
        assert trigger.get("metricType", "AverageValue") == "AverageValue", where
        meta = trigger["metadata"]
        assert meta["url"] == f"{API_URL}/v1/queues/{WORKERS[name]}", where
        assert meta.get("format", "json") == "json", where
        assert meta["valueLocation"] == "outstanding", where
        # Every /v1 request needs a key: KEDA's is a bearer token from its TriggerAuthentication.
        assert meta["authMode"] == "bearer", where
        auth = _find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert {"parameter": "token", "name": "textfleet-keda", "key": "token"} in auth["spec"][
            "secretTargetRef"
        ]
        # One pod's worth of jobs per pod: ceil(outstanding / concurrency) replicas.
        assert int(meta["targetValue"]) == _workers_concurrency(docs, name), where
        assert meta["activationTargetValue"] == "0", f"{where}: one outstanding job must wake it"
        assert so["spec"]["pollingInterval"] > 0, where
        assert so["spec"]["cooldownPeriod"] >= 60, where
        assert 0 <= so["spec"]["minReplicaCount"] <= 1, where
        assert so["spec"]["maxReplicaCount"] >= max(so["spec"]["minReplicaCount"], 1), where
        assert "fallback" not in so["spec"], f"{where}: a fallback count could scale busy workers away"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_scale_down_is_gentle(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    drain = int(_config(docs)["TEXTFLEET_WORKER_DRAIN_S"])
    for so in _of_kind(docs, "ScaledObject"):
        where = f"{overlay}: ScaledObject/{so['metadata']['name']}"
        down = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
        assert down["stabilizationWindowSeconds"] >= 60, where
        policies = down["policies"]
        assert policies, where
        assert all(p["type"] == "Pods" and p["value"] == 1 for p in policies), f"{where}: 1 pod at a time"
        assert down.get("selectPolicy", "Max") != "Disabled", where
        # At most one pod of a worker draining at a time.
        grace = _pod_spec(_find(docs, "Deployment", so["spec"]["scaleTargetRef"]["name"]))[
            "terminationGracePeriodSeconds"
        ]
        assert all(p["periodSeconds"] >= grace > drain for p in policies), where


def test_gpu_generation_worker_scales_to_zero_on_the_generate_queue(
    rendered: dict[str, list[Manifest]],
) -> None:
    so = _find(rendered["gpu"], "ScaledObject", "textfleet-worker-generate")
    assert so["spec"]["minReplicaCount"] == 0
    assert so["spec"]["scaleTargetRef"]["name"] == "textfleet-worker-generate"
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "metrics-api"
    assert trigger["metadata"]["url"].endswith("/v1/queues/generate")
    assert trigger["metadata"]["valueLocation"] == "outstanding"
    assert int(trigger["metadata"]["activationTargetValue"]) == 0
    assert so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    # The ceiling is the GPUs textfleet may use: one pod per GPU.
    assert so["spec"]["maxReplicaCount"] >= 1


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_hpas_api_plain_workers_by_keda_only(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    hpas = _of_kind(docs, "HorizontalPodAutoscaler")
    assert [h["metadata"]["name"] for h in hpas] == ["textfleet-api"], "KEDA creates the workers' HPAs"
    hpa = hpas[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "textfleet-api",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0
    # Autoscaled Deployments leave `replicas` to their autoscaler (an apply would reset it).
    for name in ("textfleet-api", *WORKERS):
        assert "replicas" not in _find(docs, "Deployment", name)["spec"], name


# --- Graceful stop ------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_worker_grace_period_outlasts_the_drain(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    drain = int(_config(docs)["TEXTFLEET_WORKER_DRAIN_S"])
    for name in WORKERS:
        workload = _find(docs, "Deployment", name)
        grace = _pod_spec(workload)["terminationGracePeriodSeconds"]
        assert grace > drain, f"{overlay}: {name}: terminationGracePeriodSeconds {grace} <= drain {drain}"
        env = {e["name"] for e in _main_container(workload).get("env", [])}
        assert "TEXTFLEET_WORKER_DRAIN_S" not in env, f"{name}: the drain comes from the ConfigMap"
        assert {"configMapRef": {"name": "textfleet-config"}} in _main_container(workload)["envFrom"]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_no_probe_shells_out_to_celery(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    for workload in rendered[overlay]:
        if workload["kind"] not in {"Deployment", "StatefulSet", "Job"}:
            continue
        for container in _containers(workload):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                text = json.dumps(container.get(probe, {}))
                assert "celery" not in text, f"{workload['metadata']['name']}/{container['name']} {probe}"
                assert "inspect" not in text


# --- Disruption budgets -------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_pod_disruption_budgets(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    pdbs = _of_kind(docs, "PodDisruptionBudget")
    for name in ("textfleet-api", *WORKERS):
        labels = _pod_labels(_find(docs, "Deployment", name))
        covering = [p for p in pdbs if _selects(p["spec"]["selector"], labels)]
        assert len(covering) == 1, f"{overlay}: {name} is covered by {len(covering)} PDBs"
        spec = covering[0]["spec"]
        if name == "textfleet-api":
            assert spec["minAvailable"] >= 1
        else:
            # minAvailable would block every drain of a worker KEDA keeps at 0 or 1 pod.
            assert "minAvailable" not in spec, name
            assert spec["maxUnavailable"] == 1, name


# --- Network policies ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_ingress_is_denied_by_default(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    deny = _find(rendered[overlay], "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny["podSelector"] == {}
    assert deny["policyTypes"] == ["Ingress"]
    assert not deny.get("ingress")


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_ingress_allows(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    # Every textfleet pod carries the label the policies select on.
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"} and doc["metadata"]["name"].startswith("textfleet-"):
            assert _pod_labels(doc).get("app.kubernetes.io/part-of") == "textfleet", doc["metadata"]["name"]

    api_rules = [
        rule
        for p in _policies_for(docs, _pod_labels(_find(docs, "Deployment", "textfleet-api")), "Ingress")
        for rule in p["spec"].get("ingress", [])
    ]
    assert any(_ports(r) == {("TCP", API_PORT)} and not r.get("from") for r in api_rules), "API clients"
    keda = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}
    assert any(keda in r.get("from", []) and ("TCP", API_PORT) in _ports(r) for r in api_rules), "KEDA"

    scrape = _find(docs, "NetworkPolicy", "allow-prometheus-scrape")["spec"]
    (rule,) = scrape["ingress"]
    assert _ports(rule) == {("TCP", API_PORT), ("TCP", WORKER_PORT)}
    assert all("namespaceSelector" in peer for peer in rule["from"])

    # Workers: nothing but scraping on the side port.
    for name in WORKERS:
        labels = _pod_labels(_find(docs, "Deployment", name))
        rules = [r for p in _policies_for(docs, labels, "Ingress") for r in p["spec"].get("ingress", [])]
        assert rules, name
        for r in rules:
            assert r.get("from"), f"{name}: ingress open to everyone"
            assert ("TCP", WORKER_PORT) in _ports(r), name


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_egress(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    needed = {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 5432)}
    for name in ("textfleet-api", *WORKERS):
        labels = _pod_labels(_find(docs, "Deployment", name))
        policies = _policies_for(docs, labels, "Egress")
        assert policies, f"{name}: egress is unrestricted"
        allowed = {port for p in policies for r in p["spec"].get("egress", []) for port in _ports(r)}
        assert needed <= allowed, name
        anywhere = [
            r for p in policies for r in p["spec"].get("egress", []) if not r.get("ports") and r.get("to")
        ]
        if name == "textfleet-worker-webhooks":
            assert anywhere, "the webhook worker must reach customer URLs"
            blocks = [peer["ipBlock"] for r in anywhere for peer in r["to"]]
            assert any("169.254.169.254/32" in b.get("except", []) for b in blocks), "cloud metadata"
        else:
            assert not anywhere, f"{name}: only the webhook worker may reach the outside world"
    job = _find(docs, "Job", "textfleet-migrate")
    assert _policies_for(docs, _pod_labels(job), "Egress")


def test_cpu_overlay_datastores_accept_textfleet_only(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["cpu"]
    for workload, port in (
        (_find(docs, "Deployment", "redis"), 6379),
        (_find(docs, "StatefulSet", "postgres"), 5432),
    ):
        rules = [
            r
            for p in _policies_for(docs, _pod_labels(workload), "Ingress")
            for r in p["spec"].get("ingress", [])
        ]
        assert rules, workload["metadata"]["name"]
        for r in rules:
            assert r["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "textfleet"}}}]
            assert _ports(r) == {("TCP", port)}


def test_cpu_overlay_keeps_one_generation_worker_warm(rendered: dict[str, list[Manifest]]) -> None:
    assert _find(rendered["cpu"], "ScaledObject", "textfleet-worker-generate")["spec"]["minReplicaCount"] == 1
