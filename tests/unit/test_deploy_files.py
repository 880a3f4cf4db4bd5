"""The deployment files (docker/, k8s/) agree with the service they deploy: its settings,
ports, topics and shutdown, and with the rules for images, users and egress. File parsing
only; the kustomizations are rendered by tests/support/manifests.py, and compared with
`kubectl kustomize` where kubectl is installed."""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from service.adapters.model_weights import place_weights
from service.settings import Settings
from tests.support import dockerfile, lockfile
from tests.support.manifests import Document, containers, one, render, split_image

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
LOCK = ROOT / "docker" / "requirements.lock"
KUSTOMIZATIONS = ("k8s/base", "k8s/overlays/example")
SERVICE = "face-service"  # the compose service and the Kubernetes container

# Measured by the benchmark (peak RSS): the parent process, and each inference worker.
PARENT_GIB = 0.3
WORKER_GIB = 0.5  # on the default runtimes, which never load TensorFlow
# After SHUTDOWN_DEADLINE_S the service still commits, stops its workers and clients.
SHUTDOWN_MARGIN_S = 10
PRIVATE_RANGES = {
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
}


class _FromManifest(Settings):
    """Settings from the given values alone: the test's own environment must not leak in."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def configured(environment: dict[str, Any]) -> Settings:
    return _FromManifest(**{name.lower(): str(value) for name, value in environment.items()})


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"][name]
    return service


@cache
def rendered(kustomization: str) -> list[Document]:
    return render(ROOT / kustomization)


def pod_environment(documents: list[Document]) -> dict[str, Any]:
    """What envFrom gives the container: the ConfigMap's data and the Secret's stringData."""
    return {**one(documents, "ConfigMap")["data"], **one(documents, "Secret")["stringData"]}


def pod_spec(documents: list[Document]) -> dict[str, Any]:
    spec: dict[str, Any] = one(documents, "Deployment")["spec"]["template"]["spec"]
    return spec


def service_container(documents: list[Document]) -> dict[str, Any]:
    return next(c for c in containers(pod_spec(documents)) if c["name"] == SERVICE)


def gibibytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    match = re.fullmatch(r"([\d.]+)([A-Za-z]*)", quantity)
    assert match is not None, quantity
    return float(match[1]) * units.get(match[2], 1) / 2**30


def cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def images_in(source: str) -> list[str]:
    if source == "docker/Dockerfile":
        return dockerfile.parse(DOCKERFILE).external_bases()
    if source == "docker/compose.yaml":
        return [service["image"] for service in compose()["services"].values()]
    deployments = [doc for doc in rendered(source) if doc["kind"] == "Deployment"]
    return [c["image"] for doc in deployments for c in containers(doc["spec"]["template"]["spec"])]


@pytest.mark.parametrize("source", ["docker/Dockerfile", "docker/compose.yaml", *KUSTOMIZATIONS])
def test_every_image_is_pinned_to_a_full_version_or_a_digest(source: str) -> None:
    def pinned(reference: str) -> bool:
        _, tag, digest = split_image(reference)
        return digest is not None or bool(tag and re.match(r"v?\d+\.\d+\.\d+", tag))

    images = images_in(source)
    assert images
    assert [image for image in images if not pinned(image)] == []


def test_every_variable_set_for_the_service_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    sources = {"compose": compose_service(SERVICE)["environment"]}
    sources |= {
        kustomization: pod_environment(rendered(kustomization)) for kustomization in KUSTOMIZATIONS
    }
    unknown = {
        source: sorted(name for name in environment if name.lower() not in fields)
        for source, environment in sources.items()
    }
    assert unknown == {source: [] for source in sources}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_kubernetes_settings_are_valid_for_production(kustomization: str) -> None:
    settings = configured(pod_environment(rendered(kustomization)))
    assert settings.environment == "production"


def test_the_compose_settings_are_valid_for_production() -> None:
    assert configured(compose_service(SERVICE)["environment"]).environment == "production"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_probes_ask_healthz_and_readyz_on_the_http_port_of_the_service(kustomization: str) -> None:
    documents = rendered(kustomization)
    port = configured(pod_environment(documents)).http_port
    container = service_container(documents)
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["http"] == port
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes == {
        "livenessProbe": {"path": "/healthz", "port": "http"},
        "readinessProbe": {"path": "/readyz", "port": "http"},
    }
    if "startupProbe" in container:
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_prometheus_scrapes_the_http_port(kustomization: str) -> None:
    documents = rendered(kustomization)
    port = configured(pod_environment(documents)).http_port
    annotations = one(documents, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    service_ports = one(documents, "Service")["spec"]["ports"]
    assert [(p["name"], p["targetPort"]) for p in service_ports] == [("http", "http")]


def test_the_image_and_compose_use_the_default_http_port() -> None:
    port = Settings.model_fields["http_port"].default
    assert dockerfile.parse(DOCKERFILE).final.last("EXPOSE").value == str(port)
    service = compose_service(SERVICE)
    health = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{configured(service['environment']).http_port}/readyz" in health


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_container_requests_cpu_and_memory_and_has_a_memory_limit(kustomization: str) -> None:
    for container in containers(pod_spec(rendered(kustomization))):
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert "memory" in resources["limits"], container["name"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_resources_fit_the_inference_workers(kustomization: str) -> None:
    documents = rendered(kustomization)
    workers = configured(pod_environment(documents)).inference_workers
    resources = service_container(documents)["resources"]
    peak = PARENT_GIB + workers * WORKER_GIB
    assert gibibytes(resources["requests"]["memory"]) >= peak
    assert gibibytes(resources["limits"]["memory"]) > gibibytes(resources["requests"]["memory"])
    assert cores(resources["requests"]["cpu"]) >= workers


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_grace_period_outlasts_the_shutdown_deadline(kustomization: str) -> None:
    documents = rendered(kustomization)
    deadline = configured(pod_environment(documents)).shutdown_deadline_s
    assert pod_spec(documents)["terminationGracePeriodSeconds"] >= deadline + SHUTDOWN_MARGIN_S


def test_compose_stop_grace_period_outlasts_the_shutdown_deadline() -> None:
    service = compose_service(SERVICE)
    deadline = configured(service["environment"]).shutdown_deadline_s
    grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
    assert grace is not None
    assert int(grace[1]) >= deadline + SHUTDOWN_MARGIN_S


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_keda_scales_on_the_commands_topic_lag_up_to_the_partition_count(
    kustomization: str,
) -> None:
    documents = rendered(kustomization)
    environment = pod_environment(documents)
    settings = configured(environment)
    scaled = one(documents, "ScaledObject")["spec"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert metadata["topic"] == settings.commands_topic
    assert metadata["consumerGroup"] == settings.kafka_group_id
    assert int(metadata["lagThreshold"]) > 0
    bootstrap = metadata.get("bootstrapServers") or environment[metadata["bootstrapServersFromEnv"]]
    assert bootstrap == settings.kafka_bootstrap_servers
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    assert scaled["maxReplicaCount"] <= settings.kafka_topic_partitions
    assert scaled["scaleTargetRef"]["name"] == one(documents, "Deployment")["metadata"]["name"]
    assert scaled["scaleTargetRef"]["envSourceContainerName"] == SERVICE


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_service_budget_and_policy_select_the_deployment_pods(kustomization: str) -> None:
    documents = rendered(kustomization)
    deployment = one(documents, "Deployment")["spec"]
    labels = deployment["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["selector"]["matchLabels"],
        "Service": one(documents, "Service")["spec"]["selector"],
        "PodDisruptionBudget": one(documents, "PodDisruptionBudget")["spec"]["selector"][
            "matchLabels"
        ],
        "NetworkPolicy": one(documents, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    }
    assert [kind for kind, s in selectors.items() if not s.items() <= labels.items()] == []
    assert "replicas" not in deployment  # KEDA owns the count


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pods_run_as_the_image_user_read_only_and_without_capabilities(kustomization: str) -> None:
    spec = pod_spec(rendered(kustomization))
    user = dockerfile.parse(DOCKERFILE).final.last("USER").value.split(":")[0]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == int(user)
    assert spec["automountServiceAccountToken"] is False
    scratch = {volume["name"] for volume in spec["volumes"] if "emptyDir" in volume}
    for container in containers(spec):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert mounts.get("/tmp") in scratch


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pods_spread_across_zones_and_nodes(kustomization: str) -> None:
    spec = pod_spec(rendered(kustomization))
    keys = {constraint["topologyKey"] for constraint in spec["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def _ports(rule: dict[str, Any]) -> set[tuple[Any, str]]:
    return {(port["port"], port.get("protocol", "TCP")) for port in rule["ports"]}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_egress_reaches_public_image_hosts_but_no_private_range(kustomization: str) -> None:
    documents = rendered(kustomization)
    settings = configured(pod_environment(documents))
    egress = one(documents, "NetworkPolicy")["spec"]["egress"]
    assert all(rule.get("to") and rule.get("ports") for rule in egress), "no allow-all rule"
    blocks = [peer["ipBlock"] for rule in egress for peer in rule["to"] if "ipBlock" in peer]
    (public,) = blocks
    assert public["cidr"] == "0.0.0.0/0"
    assert PRIVATE_RANGES - set(public["except"]) == set()
    (rule,) = [rule for rule in egress if any("ipBlock" in peer for peer in rule["to"])]
    assert _ports(rule) == {(port, "TCP") for port in settings.image_fetch_ports}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_egress_otherwise_reaches_only_dns_kafka_and_mongodb(kustomization: str) -> None:
    egress = one(rendered(kustomization), "NetworkPolicy")["spec"]["egress"]
    selected = [rule for rule in egress if not any("ipBlock" in peer for peer in rule["to"])]
    assert sorted(_ports(rule) for rule in selected) == sorted(
        [{(53, "UDP"), (53, "TCP")}, {(9092, "TCP")}, {(27017, "TCP")}]
    )
    for rule in selected:
        assert all("namespaceSelector" in peer and "podSelector" in peer for peer in rule["to"])


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_ingress_admits_only_monitoring_to_the_http_port(kustomization: str) -> None:
    policy = one(rendered(kustomization), "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    assert peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    assert _ports(rule) == {("http", "TCP")}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_test_renderer_agrees_with_kubectl_kustomize(kustomization: str) -> None:
    # kubectl ships with these machines (apt); the checks above use the Python renderer,
    # so this is the one test that needs it, and it says so rather than skipping.
    assert shutil.which("kubectl"), "kubectl is needed to render with real kustomize"
    built = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / kustomization)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    def by_name(documents: list[Document]) -> dict[tuple[str, str], Document]:
        return {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}

    assert by_name(rendered(kustomization)) == by_name(list(yaml.safe_load_all(built)))


def test_the_topic_job_creates_every_service_topic_with_the_partition_count() -> None:
    settings = configured(compose_service(SERVICE)["environment"])
    (job,) = [
        service
        for service in compose()["services"].values()
        if "kafka-topics.sh" in str(service.get("command"))
    ]
    assert set(job["environment"]["TOPICS"].split()) == {
        settings.commands_topic,
        settings.results_topic,
        settings.events_topic,
        settings.dlq_topic,
    }
    assert int(job["environment"]["PARTITIONS"]) == settings.kafka_topic_partitions
    script = " ".join(job["command"])
    assert "for topic in $$TOPICS" in script
    assert '--partitions "$$PARTITIONS"' in script


def test_compose_runs_two_replicas_of_the_service_after_its_dependencies() -> None:
    service = compose_service(SERVICE)
    assert service["deploy"]["replicas"] == 2
    assert "container_name" not in service  # one name cannot hold two replicas
    assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    topic_job = next(
        name for name, other in compose()["services"].items() if "kafka-topics.sh" in str(other)
    )
    conditions = {name: needs["condition"] for name, needs in service["depends_on"].items()}
    assert conditions == {
        "kafka": "service_healthy",
        "mongo": "service_healthy",
        topic_job: "service_completed_successfully",
        "images": "service_started",
    }


def test_compose_lets_the_service_fetch_from_the_image_server_only() -> None:
    settings = configured(compose_service(SERVICE)["environment"])
    images = compose_service("images")
    address = ipaddress.ip_address(images["networks"]["default"]["ipv4_address"])
    (ipam,) = compose()["networks"]["default"]["ipam"]["config"]
    subnet = ipaddress.ip_network(ipam["subnet"])
    allowed = [ipaddress.ip_network(cidr) for cidr in settings.image_fetch_allowlist]
    assert allowed and all(network.subnet_of(subnet) for network in allowed)
    assert any(address in network for network in allowed)
    assert address in subnet and address not in ipaddress.ip_network(ipam["ip_range"])
    server_port = int(images["command"][images["command"].index("http.server") + 1])
    assert server_port in settings.image_fetch_ports
    assert "../tests/fixtures:/srv/images:ro" in images["volumes"]


def test_the_dockerfile_builds_in_stages_on_pinned_slim_python_3_11() -> None:
    parsed = dockerfile.parse(DOCKERFILE)
    assert len(parsed.stages) >= 2
    bases = parsed.external_bases()
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base) for base in bases)


def test_the_dockerfile_runs_as_a_non_root_numeric_user() -> None:
    uid = dockerfile.parse(DOCKERFILE).final.last("USER").value.split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_the_dockerfile_starts_face_service_run_in_exec_form_on_sigterm() -> None:
    final = dockerfile.parse(DOCKERFILE).final
    assert final.last("STOPSIGNAL").value == "SIGTERM"
    entrypoint = final.last("ENTRYPOINT").exec_form()
    command = final.last("CMD").exec_form() if final.all("CMD") else []
    assert entrypoint is not None and command is not None, "exec form: a JSON array"
    argv = " ".join(entrypoint + command)
    assert "face-service run" in argv
    assert "tini" in entrypoint[0]


def test_the_dockerfile_installs_exactly_the_locked_packages() -> None:
    build = dockerfile.parse(DOCKERFILE)
    runs = [step.value for stage in build.stages for step in stage.all("RUN")]
    installs = [run for run in runs if "requirements.lock" in run and "pip install" in run]
    assert len(installs) == 1
    assert "--no-deps" in installs[0] and "--require-hashes" in installs[0]
    assert "pip check" in installs[0]
    copies = [step.value for stage in build.stages for step in stage.all("COPY")]
    assert any(copy.startswith("docker/requirements.lock ") for copy in copies)


def test_the_dockerfile_places_weights_from_packages_and_downloads_none() -> None:
    build = dockerfile.parse(DOCKERFILE)
    final = build.final
    deepface_home = final.env()["DEEPFACE_HOME"]
    assert deepface_home.startswith("/")
    placing = [step.value for step in final.all("RUN") if "place_weights(" in step.value]
    assert placing and all("DEEPFACE_HOME" in run for run in placing)
    steps = [step for stage in build.stages for step in stage.instructions]
    downloads = re.compile(r"curl|wget|https?://|build_model|DeepFace\.|urllib|requests\.get")
    assert [
        s.value for s in steps if s.keyword in {"RUN", "ADD"} and downloads.search(s.value)
    ] == []


def test_the_image_build_places_the_graphs_the_workers_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [placing] = [
        step.value
        for step in dockerfile.parse(DOCKERFILE).final.all("RUN")
        if "place_weights(" in step.value
    ]
    script = re.search(r'python -c "(.*?)"', placing, re.DOTALL)
    assert script is not None
    home = tmp_path / "models"
    monkeypatch.setenv("DEEPFACE_HOME", str(home))  # place_weights sets it; restored after
    environment = {**os.environ, "DEEPFACE_HOME": str(home)}

    subprocess.run([sys.executable, "-c", script[1]], env=environment, cwd=ROOT, check=True)

    weights = home / ".deepface" / "weights"
    built = {path: path.stat().st_mtime_ns for path in weights.iterdir()}
    # The image's model directory is read-only: a service starting there builds nothing.
    placed = place_weights(home, "Dlib", "mtcnn")
    assert placed.model_graph is not None and placed.detector_graphs is not None
    assert set(weights.glob("*.onnx")) == {placed.model_graph, *placed.detector_graphs}
    assert {path: path.stat().st_mtime_ns for path in weights.iterdir()} == built


def test_the_build_context_admits_everything_the_dockerfile_copies() -> None:
    admitted = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    build = dockerfile.parse(DOCKERFILE)
    sources = {
        source.rstrip("/")
        for stage in build.stages
        for step in stage.all("COPY")
        if not step.value.startswith("--from")
        for source in step.value.split()[:-1]
    }
    assert sources and sources <= admitted
    assert all((ROOT / source).exists() for source in sources)


def test_the_lock_pins_the_runtime_closure_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    entries = lockfile.parse(LOCK)
    assert [name for name, entry in entries.items() if entry.hashes == 0] == []
    for dependency in map(Requirement, project["dependencies"]):
        entry = entries.get(canonicalize_name(dependency.name))
        assert entry is not None, f"{dependency.name} is not locked: run docker/lock.sh"
        assert dependency.specifier.contains(entry.version), f"{dependency} vs {entry.version}"
    assert canonicalize_name(project["name"]) not in entries
    # Each entry is required by the project or by another entry: no tool or extra crept in.
    direct = {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}
    strays = [
        name
        for name, entry in entries.items()
        if name not in direct and not any(requirer in entries for requirer in entry.via)
    ]
    assert strays == []


def test_the_lock_was_resolved_for_the_python_of_the_image() -> None:
    version = dockerfile.parse(DOCKERFILE).build_args["PYTHON_VERSION"]
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    header = " ".join(itertools.takewhile(lambda line: line.startswith("#"), lines))
    assert f"Python {version} " in header


DEPLOY_FILES = [
    ".dockerignore",
    "docker/Dockerfile",
    "docker/compose.yaml",
    "docker/requirements.lock",
    "docker/lock.sh",
    "k8s/base/kustomization.yaml",
    "k8s/overlays/example/kustomization.yaml",
]


def test_the_deploy_files_and_every_one_the_readme_names_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"(?<![\w./-])((?:docker|k8s)/[\w./-]*\w)", readme)
    missing = [path for path in [*DEPLOY_FILES, *named] if not (ROOT / path).exists()]
    assert missing == []
