"""Scaling parameters come from the manifests: pairing, parsing and the errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from wakeserve.manifests import ManifestError, load_functions, parse_functions

REPO = Path(__file__).resolve().parents[2]


def isvc(name: str, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": {"autoscaling.knative.dev/window": "6s"}},
        "spec": {"predictor": {"minReplicas": 0, "maxReplicas": 3, **predictor}},
    }


def scaled_object(name: str, *triggers: dict[str, Any], label: bool = True, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"so-{name}"}
    if label:
        metadata["labels"] = {"wakeserve.dev/function": name}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata,
        "spec": {"scaleTargetRef": {"name": f"{name}-predictor"}, **spec, "triggers": list(triggers)},
    }


def kafka(topic: str, group: str, **extra: str) -> dict[str, Any]:
    return {"type": "kafka", "metadata": {"topic": topic, "consumerGroup": group, **extra}}


def test_the_repository_manifests_give_each_function_its_parameters() -> None:
    functions = load_functions(REPO / "manifests" / "base")
    assert set(functions) == {"embedder", "classifier", "generator"}
    for name, f in functions.items():
        assert f.kpa.container_concurrency == 64
        assert f.kpa.target == 16
        assert f.kpa.min_scale == 0 and f.kpa.max_scale == 4
        assert f.trigger is not None and f.scaled_object is not None
        assert f.trigger.topic == f"wakeserve.{name}.requests"
        assert f.trigger.consumer_group == f"wakeserve-{name}"
        assert f.trigger.lag_threshold == 64 and f.trigger.offset_reset_policy == "earliest"
        assert f.scaled_object.polling_interval_s == 15 and f.scaled_object.cooldown_period_s == 120
        assert (f.min_replicas, f.max_replicas) == (0, 4)
    assert functions["classifier"].env == {
        "WAKESERVE_MODEL_URI": "s3://wakeserve-models/classifier/v1",
        "WAKESERVE_TORCH_THREADS": "1",
    }
    assert functions["embedder"].env == {"WAKESERVE_TORCH_THREADS": "1"}
    assert functions["generator"].env == {"WAKESERVE_TORCH_THREADS": "1"}


@pytest.mark.parametrize(
    ("documents", "expected"),
    [
        pytest.param([isvc("a")], {"a": None}, id="no-scaledobject-means-http-only"),
        pytest.param(
            [isvc("a"), scaled_object("a", kafka("t", "g", lagThreshold="7"))], {"a": ("t", "g", 7)}, id="by-label"
        ),
        pytest.param(
            [isvc("a"), scaled_object("a", kafka("t", "g"), label=False)], {"a": ("t", "g", 10)}, id="by-target-name"
        ),
        pytest.param(
            [isvc("a"), isvc("b"), scaled_object("b", {"type": "cpu", "metadata": {}}, kafka("tb", "gb"))],
            {"a": None, "b": ("tb", "gb", 10)},
            id="other-trigger-types-ignored",
        ),
    ],
)
def test_pairing(documents: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    functions = parse_functions(("test.yaml", d) for d in documents)
    got = {
        name: (f.trigger.topic, f.trigger.consumer_group, f.trigger.lag_threshold) if f.trigger else None
        for name, f in functions.items()
    }
    assert got == expected


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        pytest.param([isvc("a"), scaled_object("a")], "expected exactly one kafka trigger", id="no-kafka-trigger"),
        pytest.param(
            [isvc("a"), scaled_object("a", kafka("t", "g"), kafka("u", "g"))],
            "expected exactly one kafka trigger",
            id="two-kafka-triggers",
        ),
        pytest.param([isvc("a"), scaled_object("b", kafka("t", "g"))], "without an InferenceService: b", id="orphan"),
        pytest.param(
            [isvc("a"), scaled_object("a", kafka("t", "g", lagThreshold="0"))], "test.yaml: ScaledObject a", id="keda"
        ),
        pytest.param(
            [isvc("a", containerConcurrency=-1)], "test.yaml: InferenceService a", id="bad-container-concurrency"
        ),
    ],
)
def test_errors_name_the_file_and_object(documents: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_functions(("test.yaml", d) for d in documents)


def test_only_literal_wakeserve_variables_are_passed_to_replicas(tmp_path: Path) -> None:
    doc = isvc("a")
    doc["spec"]["predictor"]["containers"] = [
        {
            "name": "kserve-container",
            "env": [
                {"name": "WAKESERVE_MODEL_URI", "value": "s3://b/k"},
                {"name": "WAKESERVE_KAFKA_SASL_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "p"}}},
                {"name": "OTHER", "value": "x"},
            ],
        }
    ]
    (tmp_path / "a.yaml").write_text(yaml.safe_dump_all([doc]))
    assert load_functions(tmp_path)["a"].env == {"WAKESERVE_MODEL_URI": "s3://b/k"}


@pytest.mark.parametrize(
    ("resources", "env", "threads"),
    [
        pytest.param({}, [], None, id="no-request"),
        pytest.param({"requests": {"cpu": "2"}}, [], "2", id="whole-cpus"),
        pytest.param({"requests": {"cpu": "500m"}}, [], "1", id="millicores-at-least-one"),
        pytest.param({"requests": {"cpu": 1.5}}, [], "1", id="fraction-rounds-down"),
        pytest.param(
            {"requests": {"cpu": "4"}}, [{"name": "WAKESERVE_TORCH_THREADS", "value": "3"}], "3", id="explicit-wins"
        ),
    ],
)
def test_torch_threads_follow_the_cpu_request(resources: dict[str, Any], env: list[Any], threads: str | None) -> None:
    doc = isvc("a")
    doc["spec"]["predictor"]["containers"] = [{"name": "kserve-container", "resources": resources, "env": env}]
    assert parse_functions([("a.yaml", doc)])["a"].env.get("WAKESERVE_TORCH_THREADS") == threads


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "no manifests at", id="missing"),
        pytest.param("kind: [unclosed", "not valid YAML", id="bad-yaml"),
        pytest.param("kind: ConfigMap\nmetadata: {name: x}\n", "no InferenceService", id="nothing-to-run"),
    ],
)
def test_unusable_directories(tmp_path: Path, content: str | None, message: str) -> None:
    root = tmp_path / "m"
    if content is not None:
        root.mkdir()
        (root / "x.yaml").write_text(content)
    with pytest.raises(ManifestError, match=message):
        load_functions(root)
