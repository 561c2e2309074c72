"""Every kustomization under manifests/ renders, and each topology contains what it promises."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.manifests.rendering import MANIFESTS, OVERLAYS, Rendered, deployment_mode, ref


@pytest.mark.parametrize(
    "name", ["overlays/knative", "overlays/keda", "overlays/dev", "base", "kafka/topics", "kafka/dev"]
)
def test_every_kustomization_renders_named_namespaced_objects(rendered: dict[str, Rendered], name: str) -> None:
    objects = rendered[name].objects
    assert objects, f"{name} renders nothing"
    namespace = "kafka" if name.startswith("kafka/") else "wakeserve"
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind") and obj["metadata"].get("name"), obj
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, ref(obj)
    assert len({ref(o) for o in objects}) == len(objects), "an object is rendered twice"


def test_no_kustomization_or_component_is_left_untested(rendered: dict[str, Rendered]) -> None:
    kinds: dict[str, set[Path]] = {"Kustomization": set(), "Component": set()}
    for path in MANIFESTS.rglob("kustomization.yaml"):
        kinds[yaml.safe_load(path.read_text())["kind"]].add(path.parent.relative_to(MANIFESTS))
    assert kinds["Kustomization"] == {Path(name) for name in rendered}
    used = set()
    for overlay in OVERLAYS:
        doc = yaml.safe_load((MANIFESTS / "overlays" / overlay / "kustomization.yaml").read_text())
        used |= {
            (MANIFESTS / "overlays" / overlay / c).resolve().relative_to(MANIFESTS) for c in doc.get("components", [])
        }
    assert kinds["Component"] == used


def test_each_topology_has_its_pieces(rendered: dict[str, Rendered]) -> None:
    def kinds(name: str) -> set[str]:
        return {o["kind"] for o in rendered[name].objects}

    assert {"Broker", "Trigger", "KafkaSink", "TriggerAuthentication", "ScaledObject", "Deployment"} <= kinds(
        "overlays/knative"
    )
    assert {"HTTPScaledObject", "TriggerAuthentication", "ScaledObject", "Service"} <= kinds("overlays/keda")
    assert not {"Broker", "Trigger", "KafkaSink"} & kinds("overlays/keda")
    assert {o["metadata"]["name"] for o in rendered["overlays/dev"].of_kind("InferenceService")} == {"embedder"}
    assert "TriggerAuthentication" not in kinds("overlays/dev"), "dev runs against a plain in-cluster Kafka"
    modes = {name: {deployment_mode(i) for i in rendered[name].of_kind("InferenceService")} for name in rendered}
    assert modes["overlays/knative"] == {"Knative"}
    assert modes["overlays/keda"] == modes["overlays/dev"] == {"Standard"}
    for name in ("overlays/keda", "overlays/dev"):
        for isvc in rendered[name].of_kind("InferenceService"):
            assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "external", ref(isvc)


@pytest.mark.parametrize("name", ["overlays/knative", "overlays/keda"])
def test_the_topologies_scale_every_function_to_zero(rendered: dict[str, Rendered], name: str) -> None:
    r = rendered[name]
    for isvc in r.of_kind("InferenceService"):
        assert isvc["spec"]["predictor"]["minReplicas"] == 0, ref(isvc)
        if deployment_mode(isvc) == "Knative":
            assert isvc["metadata"]["annotations"]["autoscaling.knative.dev/initial-scale"] == "0", ref(isvc)
    for so in r.of_kind("ScaledObject"):
        assert so["spec"]["minReplicaCount"] == 0 and "idleReplicaCount" not in so["spec"], ref(so)
    for hso in r.of_kind("HTTPScaledObject"):
        assert hso["spec"]["replicas"]["min"] == 0, ref(hso)


def test_no_secret_values_are_committed(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        assert not r.of_kind("Secret"), f"{r.name} renders a Secret: credentials are created out of band"
        for obj, _, container in r.containers():
            for env in container.get("env") or []:
                if any(word in env["name"] for word in ("PASSWORD", "SECRET", "TOKEN", "ACCESS_KEY")):
                    assert "value" not in env, f"{ref(obj)}: {env['name']} has a literal value"
