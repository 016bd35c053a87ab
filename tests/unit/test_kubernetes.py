"""deploy/kubernetes, checked offline: every object validates against the Kubernetes API's own
schemas (the kubernetes-validate package, strict: an unknown field is an error), and the manifests
agree with the CLI, the settings and compose.yaml (same commands, ports and variables), with
the production rules besides: headless Services, gRPC probes, requests, budgets, a grace period
above drain plus grace, and secrets only from Kubernetes Secrets."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from switchboard.cli import _parser
from switchboard.serve import METRICS_PORT_OFFSET
from switchboard.catalog import load_configuration
from switchboard.shared.config import SERVICES
from switchboard.shared.grpc.health import LIVENESS
from tests.conftest import REPO_ROOT
from tests.support.worker_keys import PUBLIC_KEYS_SETTING, SIGNING_KEY_SETTING
from tests.unit.test_compose import PARTS, substituted

MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
"""The oldest release these manifests claim (gRPC probes and the policy/v1 budgets are GA well
before it) and the newest whose schemas the package ships."""
SECRET = "switchboard"
IDENTITY_SECRET = "switchboard-identity"
# What the operator supplies (compose: ${…:?} or a password), in k8s from the Secrets alone.
SECRET_VARIABLES = {"DATABASE_URL", "SWITCHBOARD_INTERNAL_TOKEN", "SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS", "SWITCHBOARD_CREDENTIALS_KEYS"}
IDENTITY_SECRET_VARIABLES = {"SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY"}


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


KUSTOMIZATION = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
OBJECTS = [doc for name in KUSTOMIZATION["resources"] for doc in load(MANIFESTS / name)]


def find(kind: str, name: str) -> dict:
    matches = [o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


CONFIG = find("ConfigMap", SECRET)["data"]
# The settings a pod gets: the ConfigMap and (stand-ins for) its Secrets.
SECRET_STANDINS = {
    "DATABASE_URL": "postgresql://switchboard:pw@postgres:5432/switchboard",
    "SWITCHBOARD_INTERNAL_TOKEN": "t" * 40,
    "SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS": PUBLIC_KEYS_SETTING,
    "SWITCHBOARD_CREDENTIALS_KEYS": substituted({"k": "${SWITCHBOARD_CREDENTIALS_KEYS:?x}"})["k"],
    "SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY": SIGNING_KEY_SETTING,
}
SETTINGS = load_configuration({**CONFIG, **{k: v for k, v in SECRET_STANDINS.items() if k in SECRET_VARIABLES}}).platform


def container_of(kind: str, name: str) -> dict:
    spec = find(kind, name)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return container


def test_the_kustomization_lists_every_manifest_in_the_folder():
    files = sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(KUSTOMIZATION["resources"]) == files
    assert all(o["metadata"].get("namespace", KUSTOMIZATION["namespace"]) == KUSTOMIZATION["namespace"] for o in OBJECTS)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(version):
    for obj in OBJECTS:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validation_can_fail():
    deployment = find("Deployment", "runs")
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_every_part_of_compose_has_its_workload():
    assert {o["metadata"]["name"] for o in OBJECTS if o["kind"] == "Deployment"} == {*SERVICES, "edge"}
    assert {o["metadata"]["name"] for o in OBJECTS if o["kind"] == "Job"} == {"switchboard-migrate"}
    assert set(PARTS) - {"postgres"} == {*SERVICES, "edge", "migrate"}  # PostgreSQL is yours to run


def test_the_configuration_is_compose_s_and_secrets_come_from_secrets():
    compose = PARTS["migrate"]["environment"]
    assert set(CONFIG) | SECRET_VARIABLES == set(compose)
    assert not set(CONFIG) & (SECRET_VARIABLES | IDENTITY_SECRET_VARIABLES)
    literal = substituted({k: v for k, v in compose.items() if k not in SECRET_VARIABLES})
    assert CONFIG == literal
    load_configuration({**CONFIG, **SECRET_STANDINS})  # a valid configuration: no unknown name, every value parses


@pytest.mark.parametrize("workload", [("Job", "switchboard-migrate"), *(("Deployment", s) for s in (*SERVICES, "edge"))])
def test_commands_are_compose_s_and_ones_the_cli_accepts(workload):
    kind, name = workload
    command = container_of(kind, name)["command"]
    part = "migrate" if kind == "Job" else name
    assert command == PARTS[part]["command"]
    args = _parser().parse_args(command[1:])
    assert (args.command, getattr(args, "service", None)) == (("migrate", None) if part == "migrate" else ("serve", name))


@pytest.mark.parametrize("workload", [("Job", "switchboard-migrate"), *(("Deployment", s) for s in (*SERVICES, "edge"))])
def test_environment_only_from_the_config_map_and_secrets_with_the_private_key_for_identity_only(workload):
    kind, name = workload
    container = container_of(kind, name)
    assert "env" not in container  # no literal value, no secret spelled out in a manifest
    sources = [(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()]
    expected = [("configMapRef", SECRET), ("secretRef", SECRET)]
    assert sources == expected + ([("secretRef", IDENTITY_SECRET)] if name == "identity" else [])
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_listens_where_the_settings_say_and_is_probed_over_grpc(service):
    container = container_of("Deployment", service)
    port = SETTINGS.port_of(service)
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"grpc": port, "metrics": port + METRICS_PORT_OFFSET}
    assert container["readinessProbe"]["grpc"] == {"port": port}  # "": NOT_SERVING without a database
    assert container["livenessProbe"]["grpc"] == {"port": port, "service": LIVENESS}  # alive regardless
    assert container["startupProbe"]["grpc"] == {"port": port}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_headless_so_that_dns_round_robin_sees_every_replica(service):
    deployment, headless = find("Deployment", service), find("Service", service)
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert headless["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (port,) = headless["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (SETTINGS.port_of(service), "grpc")
    # Clients resolve the Service's name on the service's port.
    assert SETTINGS.target_of(service) == f"dns:///{headless['metadata']['name']}:{SETTINGS.port_of(service)}"


def test_the_edge_listens_on_its_port_behind_a_service():
    container = container_of("Deployment", "edge")
    assert container["ports"] == [{"name": "http", "containerPort": SETTINGS.edge_port}]
    assert container["readinessProbe"]["httpGet"]["path"] == container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert find("Service", "edge")["spec"]["ports"][0]["port"] == SETTINGS.edge_port


@pytest.mark.parametrize("name", [*SERVICES, "edge"])
def test_disruption_budgets_keep_a_replica_and_termination_outlasts_the_drain(name):
    deployment, budget = find("Deployment", name), find("PodDisruptionBudget", name)
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert deployment["spec"]["replicas"] > budget["spec"]["minAvailable"] >= 1
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # SIGTERM: NOT_SERVING for the drain delay, then calls in flight get the shutdown grace.
    assert grace > SETTINGS.drain_delay_seconds + SETTINGS.shutdown_grace_seconds + 5


def test_pods_run_as_the_image_s_non_root_user():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    for obj in OBJECTS:
        if obj["kind"] in ("Deployment", "Job"):
            security = obj["spec"]["template"]["spec"]["securityContext"]
            assert security["runAsNonRoot"] is True
            if "runAsUser" in security:
                assert f"--uid {security['runAsUser']}" in dockerfile and f"USER {security['runAsUser']}" in dockerfile
