"""Topics exist for what the code produces and consumes; SASL/TLS reads one Secret everywhere."""

from __future__ import annotations

import pytest

from events.settings import EventSettings
from tests.manifests import entrypoints
from tests.manifests.rendering import Rendered, ref

SECURE = ("overlays/knative", "overlays/keda")
KEDA_SASL = {"plaintext", "scram_sha256", "scram_sha512"}  # KEDA's kafka scaler spelling


def test_the_strimzi_topics_are_the_codes(rendered: dict[str, Rendered]) -> None:
    topics = EventSettings.model_construct().topics
    functions = {i["metadata"]["name"] for i in rendered["base"].of_kind("InferenceService")}
    expected = {topics.requests(f) for f in functions} | {topics.results, topics.deadletter}
    max_replicas = max(so["spec"]["maxReplicaCount"] for so in rendered["base"].of_kind("ScaledObject"))
    for name, replicas in (("kafka/topics", 3), ("kafka/dev", 1)):
        kafka_topics = rendered[name].of_kind("KafkaTopic")
        assert {t["metadata"]["name"] for t in kafka_topics} == expected
        for topic in kafka_topics:
            # KEDA never runs more consumers than partitions, so fewer partitions would cap maxReplicaCount.
            assert topic["spec"]["partitions"] >= max_replicas, ref(topic)
            assert topic["spec"]["replicas"] == replicas, ref(topic)
            assert int(topic["spec"]["config"]["min.insync.replicas"]) <= replicas, ref(topic)


def bootstrap(r: Rendered) -> str:
    return r.config_maps()["wakeserve-config"]["WAKESERVE_KAFKA_BOOTSTRAP"]


@pytest.mark.parametrize("name", SECURE)
def test_sasl_tls_reads_the_pods_secret_everywhere(rendered: dict[str, Rendered], name: str) -> None:
    r = rendered[name]
    pod_secrets = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for _, _, c in r.containers()
        for e in c.get("env") or []
        if e["name"].startswith("WAKESERVE_KAFKA_") and "valueFrom" in e
    }
    assert len(pod_secrets) == 1
    secret = pod_secrets.pop()
    auths = {a["metadata"]["name"]: a for a in r.of_kind("TriggerAuthentication")}
    for so in r.of_kind("ScaledObject"):
        kafka = so["spec"]["triggers"][0]
        assert kafka["type"] == "kafka", ref(so)
        auth = auths.get(kafka.get("authenticationRef", {}).get("name", ""))
        assert auth is not None, f"{ref(so)}: kafka trigger without its TriggerAuthentication"
        targets = {t["parameter"]: t for t in auth["spec"]["secretTargetRef"]}
        assert {"sasl", "username", "password", "tls"} <= set(targets), ref(auth)
        assert {t["name"] for t in targets.values()} == {secret}, ref(auth)
        assert {t["key"] for t in targets.values()} <= set(entrypoints.SECRET_VALUES), ref(auth)
    assert entrypoints.SECRET_VALUES["keda.sasl"] in KEDA_SASL
    for sink in r.of_kind("KafkaSink"):
        assert sink["spec"]["auth"]["secret"]["ref"]["name"] == secret, ref(sink)
        assert sink["spec"]["bootstrapServers"] == [bootstrap(r)], ref(sink)
    broker_config = r.config_maps().get("wakeserve-kafka-broker")
    if r.of_kind("Broker"):
        assert broker_config is not None
        assert broker_config["auth.secret.ref.name"] == secret
        assert broker_config["bootstrap.servers"] == bootstrap(r)
    cafile = r.config_maps()["wakeserve-config"]["WAKESERVE_KAFKA_SSL_CAFILE"]
    for obj, pod, container in r.containers():
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        mounted = [
            m["mountPath"].rstrip("/") + "/" + item["path"]
            for m in container.get("volumeMounts") or []
            if (volume := volumes.get(m["name"], {}).get("secret", {})).get("secretName") == secret
            for item in volume.get("items") or []
            if item["key"] == "ca.crt"
        ]
        assert mounted == [cafile], f"{ref(obj)}: {cafile} is not the Secret's ca.crt"


def test_dev_talks_plain_kafka(rendered: dict[str, Rendered]) -> None:
    r = rendered["overlays/dev"]
    assert "WAKESERVE_KAFKA_SSL_CAFILE" not in r.config_maps()["wakeserve-config"]
    assert bootstrap(r).endswith(":9092")
    assert all("authenticationRef" not in t for so in r.of_kind("ScaledObject") for t in so["spec"]["triggers"])
