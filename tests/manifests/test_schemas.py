"""Rendered objects validate against Kubernetes' and the upstream CRDs' schemas; skaffold.yaml against skaffold's.

The negative cases prove each validator rejects the kind of mistake it is there for.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.manifests.rendering import KUSTOMIZATIONS, REPO, Rendered, ref
from tests.manifests.schemas import object_errors, skaffold_errors, with_change

pytestmark = pytest.mark.usefixtures("shared_schemas")


@pytest.mark.slow  # parses 3.5 MB of upstream CRDs once (about 2 s)
@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_every_rendered_object_validates(rendered: dict[str, Rendered], name: str) -> None:
    errors = {ref(o): e for o in rendered[name].objects if (e := object_errors(o))}
    assert errors == {}


# (rendered kustomization, Kind/name, dotted path, bad value, expected message)
REJECTED = {
    "crd-unknown-field": ("overlays/keda", "InferenceService/embedder", "spec.predictor.minReplica", 0, "'minReplica' was unexpected"),
    "crd-enum": ("overlays/keda", "InferenceService/embedder", "spec.predictor.scaleMetric", "lag", "is not one of"),
    "crd-metadata-strings": ("overlays/keda", "ScaledObject/embedder", "spec.triggers.0.metadata.lagThreshold", 64, "is not of type 'string'"),
    "crd-cel-min-above-max": ("overlays/keda", "ScaledObject/embedder", "spec.minReplicaCount", 9, "minReplicaCount"),
    "crd-cel-port-xor-portname": ("overlays/keda", "HTTPScaledObject/embedder-http", "spec.scaleTargetRef.portName", "http", "either the 'portName' or the 'port'"),
    "crd-nested-unknown-field": ("overlays/knative", "Trigger/embedder-requests", "spec.subscriber.path", "/x", "'path' was unexpected"),
    "crd-kafkasink-mode": ("overlays/knative", "KafkaSink/wakeserve-results", "spec.contentMode", "json", "is not one of"),
    "crd-objectmeta": ("overlays/keda", "InferenceService/embedder", "metadata.annotations", {"a": 1}, "metadata"),
    "crd-unknown-version": ("overlays/keda", "ScaledObject/embedder", "apiVersion", "keda.sh/v1beta9", "no CRD for keda.sh/v1beta9"),
    "builtin-strict": ("overlays/keda", "Deployment/wakeserve-ingress", "spec.template.spec.containers.0.imagePullPolcy", "Always", "'imagePullPolcy' was unexpected"),
    "kafkatopic-bounds": ("kafka/topics", "KafkaTopic/wakeserve.results", "spec.partitions", 0, "spec.partitions"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_validation_rejects(rendered: dict[str, Rendered], case: str) -> None:
    name, kind_name, dotted, value, message = REJECTED[case]
    kind, _, object_name = kind_name.partition("/")
    obj = rendered[name].find(kind, object_name)
    assert obj is not None
    assert object_errors(obj) == []
    path: list[str | int] = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    errors = object_errors(with_change(obj, path, value))
    assert any(message in e for e in errors), errors


def skaffold_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    return config


def test_skaffold_yaml_validates_against_its_schema() -> None:
    config = skaffold_config()
    assert config["apiVersion"] in ("skaffold/v4beta13", "skaffold/v4beta14")
    assert skaffold_errors(config) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(["build", "artifacts", 0, "sync", "manual", 0, "dst"], "/app", id="sync-rule-typo"),
        pytest.param(["portForward", 0, "localPort"], "8080", id="port-type"),
        pytest.param(["profiles", 0, "activation", 0, "context"], "kind", id="activation-typo"),
    ],
)
def test_skaffold_validation_rejects(path: list[Any], value: Any) -> None:
    assert skaffold_errors(with_change(skaffold_config(), path, value))
