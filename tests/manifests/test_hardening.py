"""Every wakeserve pod, InferenceServices included (checkov does not read them), runs locked down, and the
network policies let through exactly the paths docs/deploy.md describes."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import pytest

from tests.manifests.network_policies import OUTSIDE, Endpoint, allowed
from tests.manifests.rendering import OVERLAYS, REPO, Rendered, ref
from wakeserve.manifests import cpu_quantity

DOCKERFILE = (REPO / "Dockerfile").read_text()
UID = int(re.search(r"(?m)^ARG UID=(\d+)$", DOCKERFILE).group(1))  # type: ignore[union-attr]
HF_HOME = re.search(r"HF_HOME=(\S+)", DOCKERFILE).group(1)  # type: ignore[union-attr]
ADMIN_PORT = 8082  # the predictors' control API, bound to 127.0.0.1 inside the pod


def under(path: str, mounts: list[str]) -> bool:
    return any(PurePosixPath(path).is_relative_to(m) for m in mounts)


def test_the_image_user_is_a_high_uid() -> None:
    assert UID >= 10000, "a low UID may collide with a user of the node"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_as_the_image_user_without_privileges(rendered: dict[str, Rendered], overlay: str) -> None:
    for obj, pod, container in rendered[f"overlays/{overlay}"].containers():
        where = f"{ref(obj)}/{container['name']}"
        ctx = container.get("securityContext") or {}
        assert (ctx.get("runAsNonRoot"), ctx.get("runAsUser"), ctx.get("runAsGroup")) == (True, UID, UID), where
        assert ctx.get("allowPrivilegeEscalation") is False, where
        assert ctx.get("capabilities") == {"drop": ["ALL"]}, where
        assert ctx.get("seccompProfile") == {"type": "RuntimeDefault"}, where
        # The inner loop syncs sources into /app; everywhere else the root filesystem is read-only.
        assert ctx.get("readOnlyRootFilesystem") is (overlay != "dev"), where
        resources = container["resources"]
        assert cpu_quantity(resources["limits"]["cpu"]) >= cpu_quantity(resources["requests"]["cpu"]), where
        if obj["kind"] == "Deployment":
            assert pod.get("automountServiceAccountToken") is False, where
            assert (pod.get("securityContext") or {}).get("runAsUser") == UID, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_account_mounts_no_token(rendered: dict[str, Rendered], overlay: str) -> None:
    r = rendered[f"overlays/{overlay}"]
    accounts = {sa["metadata"]["name"]: sa for sa in r.of_kind("ServiceAccount")}
    for obj, pod, _ in r.containers():
        account = accounts[pod["serviceAccountName"]]
        assert account.get("automountServiceAccountToken") is False, ref(obj)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_what_the_processes_write_goes_to_empty_dirs(rendered: dict[str, Rendered], overlay: str) -> None:
    r = rendered[f"overlays/{overlay}"]
    config = r.config_maps()["wakeserve-config"]
    for obj, pod, container in r.containers():
        where = f"{ref(obj)}/{container['name']}"
        scratch = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}
        writable = [m["mountPath"] for m in container.get("volumeMounts") or [] if m["name"] in scratch]
        assert under("/tmp", writable), where
        if container["args"][0] == "serve":
            assert under(config["WAKESERVE_MODEL_CACHE_DIR"], writable), where
            assert under(HF_HOME, writable), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_s3_credentials_arrive_as_a_file(rendered: dict[str, Rendered], overlay: str) -> None:
    r = rendered[f"overlays/{overlay}"]
    config_file = r.config_maps()["wakeserve-config"]["AWS_CONFIG_FILE"]
    for obj, pod, container in r.containers():
        where = f"{ref(obj)}/{container['name']}"
        assert not any("secretRef" in source for source in container.get("envFrom") or []), where
        if container["args"][0] not in ("serve", "dispatch"):
            continue
        volumes = {v["name"]: v.get("secret") or {} for v in pod.get("volumes") or []}
        files = [
            f"{m['mountPath'].rstrip('/')}/{item['path']}"
            for m in container.get("volumeMounts") or []
            if volumes.get(m["name"], {}).get("secretName") == "wakeserve-s3"
            for item in volumes[m["name"]].get("items") or []
        ]
        assert files == [config_file], where


def predictor(function: str) -> Endpoint:
    # The labels KServe puts on every predictor pod.
    return Endpoint("wakeserve", {"serving.kserve.io/inferenceservice": function, "component": "predictor"})


INGRESS = Endpoint("wakeserve", {"app.kubernetes.io/name": "wakeserve-ingress"})
SCALER = Endpoint("wakeserve", {"app.kubernetes.io/name": "wakeserve-scaler"})
DISPATCHER = Endpoint(
    "wakeserve", {"app.kubernetes.io/name": "embedder-dispatch", "app.kubernetes.io/component": "dispatcher"}
)
INTERCEPTOR = Endpoint("keda", {"app.kubernetes.io/component": "interceptor"})
KEDA_OPERATOR = Endpoint("keda", {"app.kubernetes.io/name": "keda-operator"})
ACTIVATOR = Endpoint("knative-serving", {"app": "activator"})
KOURIER = Endpoint("kourier-system", {"app": "3scale-kourier-gateway"})
DNS = Endpoint("kube-system", {"k8s-app": "kube-dns"})
BROKER = Endpoint("kafka", {"strimzi.io/cluster": "wakeserve"})
OTHER_POD = Endpoint("default", {"app": "anything"})

# (overlay, source, target, port, allowed)
PATHS: dict[str, tuple[str, Endpoint, Endpoint, int, bool]] = {
    "keda-interceptor-to-predictor": ("keda", INTERCEPTOR, predictor("embedder"), 8080, True),
    "keda-interceptor-to-grpc": ("keda", INTERCEPTOR, predictor("embedder"), 8081, False),
    "keda-interceptor-to-admin": ("keda", INTERCEPTOR, predictor("embedder"), ADMIN_PORT, False),
    "keda-any-pod-to-predictor": ("keda", OTHER_POD, predictor("classifier"), 8080, False),
    "keda-ingress-to-predictor": ("keda", INGRESS, predictor("embedder"), 8080, False),
    "keda-operator-to-scaler": ("keda", KEDA_OPERATOR, SCALER, 9090, True),
    "keda-any-pod-to-scaler": ("keda", OTHER_POD, SCALER, 9090, False),
    "keda-producer-to-ingress": ("keda", OTHER_POD, INGRESS, 8088, True),
    "keda-outside-to-ingress": ("keda", OUTSIDE, INGRESS, 8088, False),
    "keda-predictor-to-kafka": ("keda", predictor("embedder"), BROKER, 9093, True),
    "keda-predictor-to-dns": ("keda", predictor("embedder"), DNS, 53, True),
    "keda-predictor-to-s3": ("keda", predictor("embedder"), OUTSIDE, 443, True),
    "keda-ingress-to-s3": ("keda", INGRESS, OUTSIDE, 443, False),
    "keda-scaler-to-kafka": ("keda", SCALER, BROKER, 9093, True),
    "keda-predictor-to-other-pod": ("keda", predictor("embedder"), OTHER_POD, 8080, False),
    "dev-interceptor-to-predictor": ("dev", INTERCEPTOR, predictor("embedder"), 8080, True),
    "dev-ingress-to-plain-kafka": ("dev", INGRESS, BROKER, 9092, True),
    "dev-any-pod-to-predictor": ("dev", OTHER_POD, predictor("embedder"), 8080, False),
    "knative-activator-to-queue-proxy": ("knative", ACTIVATOR, predictor("embedder"), 8012, True),
    "knative-gateway-to-queue-proxy": ("knative", KOURIER, predictor("classifier"), 8013, True),
    "knative-autoscaler-scrape": ("knative", ACTIVATOR, predictor("embedder"), 9090, True),
    "knative-gateway-to-user-container": ("knative", KOURIER, predictor("embedder"), 8080, False),
    "knative-activator-to-admin": ("knative", ACTIVATOR, predictor("embedder"), ADMIN_PORT, False),
    "knative-dispatcher-around-gateway": ("knative", DISPATCHER, predictor("embedder"), 8012, False),
    "knative-any-pod-to-queue-proxy": ("knative", OTHER_POD, predictor("embedder"), 8012, False),
    "knative-dispatcher-to-gateway": ("knative", DISPATCHER, KOURIER, 8081, True),
    "knative-dispatcher-to-s3": ("knative", DISPATCHER, OUTSIDE, 443, True),
    "knative-ingress-to-gateway": ("knative", INGRESS, KOURIER, 8081, False),
    "knative-ingress-to-kafka": ("knative", INGRESS, BROKER, 9093, True),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_control_api_port_is_exposed_nowhere(rendered: dict[str, Rendered], overlay: str) -> None:
    r = rendered[f"overlays/{overlay}"]
    assert int(r.config_maps()["wakeserve-config"]["WAKESERVE_ADMIN_PORT"]) == ADMIN_PORT
    for obj, _, container in r.containers():
        assert ADMIN_PORT not in {p["containerPort"] for p in container.get("ports") or []}, ref(obj)
    for svc in r.of_kind("Service"):
        assert ADMIN_PORT not in {p.get("targetPort") for p in svc["spec"]["ports"]}, ref(svc)
    for policy in r.of_kind("NetworkPolicy"):
        opened = {p.get("port") for rule in policy["spec"].get("ingress") or [] for p in rule.get("ports") or []}
        assert ADMIN_PORT not in opened, ref(policy)


@pytest.mark.parametrize("case", sorted(PATHS))
def test_network_policies_allow_only_the_documented_paths(rendered: dict[str, Rendered], case: str) -> None:
    overlay, source, target, port, expected = PATHS[case]
    policies: list[dict[str, Any]] = rendered[f"overlays/{overlay}"].of_kind("NetworkPolicy")
    assert allowed(policies, source, target, port) is expected


def test_without_policies_everything_is_allowed() -> None:
    # The evaluator's baseline: the paths above are closed by the policies, not by the evaluator.
    assert allowed([], OTHER_POD, predictor("embedder"), ADMIN_PORT)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_covered_by_a_deny_by_default_policy(rendered: dict[str, Rendered], overlay: str) -> None:
    policies = rendered[f"overlays/{overlay}"].of_kind("NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
