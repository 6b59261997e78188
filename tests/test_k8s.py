"""The Kubernetes manifests (deploy/k8s): every resource valid against the
API's schemas (offline, kubernetes-validate), as kustomize renders it too
when kubectl is here; and what the engine needs of them: each gRPC service
behind a headless Service its clients' dns:/// address names, probed on the
health service, workers and trackers apart, secrets that exist."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from orderengine.mesh.channels import EXECUTION_SERVICE, ORDER_SERVICE, QUOTE_SERVICE
from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
TLS_COMPONENT = K8S / "components" / "tls"
# The oldest Kubernetes the manifests are for, and the newest the schemas know.
VERSIONS = ["1.30", kubernetes_validate.latest_version()]
# Service name -> (its full gRPC name, the command that runs it, its BIND setting).
GRPC_SERVICES = {
    "order-service": (ORDER_SERVICE, "order_service.main", "ORDER_SERVICE"),
    "quote-service": (QUOTE_SERVICE, "router_service.main", "QUOTE_SERVICE"),
    "execution-service": (EXECUTION_SERVICE, "executor.main", "EXECUTION_SERVICE"),
}
KUBECTL = shutil.which("kubectl")

Resource = dict[str, Any]


def load(text: str) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def manifests() -> dict[str, list[Resource]]:
    """Each manifest file of the base, by name, with its resources."""
    return {
        path.name: load(path.read_text())
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def every_resource() -> list[Resource]:
    return [resource for found in manifests().values() for resource in found]


def named(kind: str, name: str, resources: list[Resource] | None = None) -> Resource:
    [found] = [
        r
        for r in (resources if resources is not None else every_resource())
        if r["kind"] == kind and r["metadata"]["name"] == name
    ]
    return found


def container(deployment: Resource) -> Resource:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_of(deployment: Resource) -> dict[str, str]:
    """What a Deployment's container sees: its ConfigMaps' data and its own env."""
    values: dict[str, str] = {}
    for source in container(deployment).get("envFrom", []):
        if "configMapRef" in source:
            values.update(named("ConfigMap", source["configMapRef"]["name"])["data"])
    values.update({e["name"]: e["value"] for e in container(deployment).get("env", [])})
    return values


def invalid(resources: list[Resource]) -> list[str]:
    """Each resource that fails its schema, or has none, for every version."""
    problems = []
    for version in VERSIONS:
        for resource in resources:
            name = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                problems.append(f"{name} on {version}: {where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{name} on {version}: {exc.message}")
    return problems


def test_every_manifest_is_valid_against_the_api_schemas() -> None:
    resources = every_resource()
    assert len(resources) >= 19
    assert invalid(resources) == []


def test_a_broken_manifest_is_caught() -> None:
    """The check above can fail: a probe's port as a name, a typo'd kind."""
    deployment = named("Deployment", "order-service")
    broken = copy.deepcopy(deployment)
    container(broken)["readinessProbe"]["grpc"]["port"] = "health"
    assert invalid([broken])
    assert invalid([{**deployment, "kind": "Deploymnet"}])


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(manifests())


@pytest.mark.parametrize("service", sorted(GRPC_SERVICES))
def test_each_grpc_service_is_headless_and_probed_on_its_health_service(service: str) -> None:
    full_name, module, setting = GRPC_SERVICES[service]
    deployment = named("Deployment", service)
    engine = container(deployment)
    assert module in engine["command"]
    env = env_of(deployment)
    port = int(env[f"{setting}_BIND"].rpartition(":")[2])
    health_port = int(env["HEALTH_PORT"])
    # Clients dial every replica through the Service's name, on the port the server binds.
    assert env[f"{setting}_ADDRESS"] == f"dns:///{service}:{port}"
    headless = named("Service", service)
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    [grpc_port] = headless["spec"]["ports"]
    assert grpc_port["port"] == port
    # Native grpc probes on the health port: ready while the service is
    # SERVING, alive while the server answers.
    assert engine["readinessProbe"]["grpc"] == {"port": health_port, "service": full_name}
    assert engine["livenessProbe"]["grpc"] == {"port": health_port}
    assert {p["containerPort"] for p in engine["ports"]} >= {port, health_port}
    # A rolling upgrade never has fewer replicas serving than asked for.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["replicas"] >= 2


def test_workers_and_trackers_run_and_scale_apart() -> None:
    worker, tracker = named("Deployment", "worker"), named("Deployment", "tracker")
    assert container(worker)["command"][-2:] == ["executor.main", "worker"]
    assert container(tracker)["command"][-2:] == ["executor.main", "tracker"]
    assert worker["spec"]["selector"] != tracker["spec"]["selector"]


def test_secrets_and_backends_come_from_secrets_that_exist() -> None:
    resources = every_resource()
    secrets = {r["metadata"]["name"]: r for r in resources if r["kind"] == "Secret"}
    users = [r for r in resources if r["kind"] in ("Deployment", "Job")]
    for user in users:
        for source in container(user).get("envFrom", []):
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, user["metadata"]["name"]
    token = secrets["orderengine-internal-token"]["stringData"]
    backends = secrets["orderengine-backends"]["stringData"]
    assert set(token) == {"INTERNAL_TOKEN"}
    assert {"DATABASE_URL", "REDIS_URL"} <= set(backends)
    # The token and the database are no one's business but the engine's:
    # never in the ConfigMap.
    config = named("ConfigMap", "orderengine-config")["data"]
    assert not {"INTERNAL_TOKEN", "DATABASE_URL", "REDIS_URL"} & set(config)
    # Every process that calls an internal service has the token.
    for name in [*GRPC_SERVICES, "worker", "tracker"]:
        sources = container(named("Deployment", name))["envFrom"]
        refs = [source["secretRef"]["name"] for source in sources if "secretRef" in source]
        assert "orderengine-internal-token" in refs, name


def kustomize(directory: Path) -> list[Resource]:
    assert KUBECTL is not None
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    return load(rendered.stdout)


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl to render the kustomization")
def test_what_kustomize_renders_is_valid(tmp_path: Path) -> None:
    base = kustomize(K8S)
    assert invalid(base) == []
    assert {r["metadata"].get("namespace") for r in base if r["kind"] != "Namespace"} == {
        "orderengine"
    }
    pods = [r["spec"]["template"]["spec"] for r in base if r["kind"] in ("Deployment", "Job")]
    assert {c["image"] for pod in pods for c in pod["containers"]} == {"orderengine:local"}

    # An overlay with TLS on: every Deployment mounts the Secret and points
    # the TLS settings at it; the gateway is probed over HTTPS.
    overlay = tmp_path / "tls"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(K8S, overlay)],
                "components": [os.path.relpath(TLS_COMPONENT, overlay)],
            }
        )
    )
    with_tls = kustomize(overlay)
    assert invalid(with_tls) == []
    deployments = [r for r in with_tls if r["kind"] == "Deployment"]
    assert len(deployments) == 6
    for deployment in deployments:
        env = {e["name"]: e["value"] for e in container(deployment)["env"]}
        mounts = {m["name"]: m["mountPath"] for m in container(deployment)["volumeMounts"]}
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == "orderengine-tls"
        for setting, file in (
            ("TLS_CERT_FILE", "tls.crt"),
            ("TLS_KEY_FILE", "tls.key"),
            ("TLS_CA_FILE", "ca.crt"),
        ):
            assert env[setting] == f"{mounts['tls']}/{file}"
    gateway = container(named("Deployment", "gateway", with_tls))
    assert gateway["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert {e["name"]: e["value"] for e in gateway["env"]}["GATEWAY_ADDRESS"].startswith("https:")
