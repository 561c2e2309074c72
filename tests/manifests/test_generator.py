"""The generator on the cluster: what a token stream may take on the knative topology, and memory sized from
the measurements its manifest cites."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.manifests.rendering import MANIFESTS, OVERLAYS, Rendered, deployment_mode
from tests.manifests.schemas import CRDS

# Knative's default max-revision-timeout-seconds: a revision may not ask for more.
KNATIVE_MAX_REVISION_TIMEOUT_S = 600
# Peak RSS of a replica measured as its manifest says (docs/deploy.md, "The generator").
MEASURED_16_CHATS_MIB = 1208
MEASURED_16_LONG_PROMPTS_MIB = 2898


def revision_timeouts(isvc: dict[str, Any]) -> dict[str, int | None]:
    """The request timeouts KServe writes into the Knative revision of a Knative-mode predictor: ``timeout``
    becomes both timeoutSeconds and responseStartTimeoutSeconds; idleTimeoutSeconds it never sets (None: Knative's
    config-defaults decide)."""
    timeout = isvc["spec"]["predictor"].get("timeout")
    return {"timeoutSeconds": timeout, "responseStartTimeoutSeconds": timeout, "idleTimeoutSeconds": None}


def generator(r: Rendered) -> dict[str, Any]:
    isvc = r.find("InferenceService", "generator", "wakeserve")
    assert isvc is not None, r.name
    return isvc


def test_a_token_stream_may_run_for_knatives_maximum_on_the_knative_topology(rendered: dict[str, Rendered]) -> None:
    isvc = generator(rendered["overlays/knative"])
    assert deployment_mode(isvc) == "Knative"
    timeouts = revision_timeouts(isvc)
    assert timeouts == {
        "timeoutSeconds": KNATIVE_MAX_REVISION_TIMEOUT_S,
        "responseStartTimeoutSeconds": KNATIVE_MAX_REVISION_TIMEOUT_S,
        "idleTimeoutSeconds": None,
    }
    # The first byte may wait for a whole cold start: as long as the startup probe lets loading take.
    startup = isvc["spec"]["predictor"]["containers"][0]["startupProbe"]
    assert timeouts["responseStartTimeoutSeconds"] >= startup["periodSeconds"] * startup["failureThreshold"]


def test_only_the_generator_changes_knatives_request_timeouts(rendered: dict[str, Rendered]) -> None:
    for name in OVERLAYS:
        for isvc in rendered[f"overlays/{name}"].of_kind("InferenceService"):
            streams = name == "knative" and isvc["metadata"]["name"] == "generator"
            assert ("timeout" in isvc["spec"]["predictor"]) is streams, (name, isvc["metadata"]["name"])


def test_the_inference_service_carries_one_timeout_of_the_three_a_revision_has(shared_schemas: None) -> None:
    # Why the knative overlay sets `timeout` alone: the finer stream timeouts exist on a Knative revision but
    # KServe's predictor has no field for them.
    def versions(path: str) -> dict[str, Any]:
        crd = yaml.safe_load((CRDS / path).read_text())
        return {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]}

    revision = versions("serving.knative.dev_service.yaml")["v1"]["properties"]["spec"]["properties"]["template"]
    knative_fields = set(revision["properties"]["spec"]["properties"])
    assert {"timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds"} <= knative_fields
    predictor = versions("serving.kserve.io_inferenceservices.yaml")["v1beta1"]["properties"]["spec"]["properties"]
    kserve_fields = set(predictor["predictor"]["properties"])
    assert {f for f in kserve_fields if "timeout" in f.lower()} == {"timeout"}


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity) / 2**20


@pytest.mark.parametrize("quantity", ["1536Mi", "1.5Gi", str(1536 * 2**20)])
def test_memory_quantities_parse(quantity: str) -> None:
    assert mebibytes(quantity) == 1536


def test_the_generators_memory_covers_what_was_measured() -> None:
    isvc = yaml.safe_load((MANIFESTS / "base" / "generator" / "inferenceservice.yaml").read_text())
    resources = isvc["spec"]["predictor"]["containers"][0]["resources"]
    request, limit = mebibytes(resources["requests"]["memory"]), mebibytes(resources["limits"]["memory"])
    # Headroom over each measured peak, so neither a busy node's eviction nor the OOM killer picks the replica.
    assert request >= 1.2 * MEASURED_16_CHATS_MIB
    assert limit >= 1.2 * MEASURED_16_LONG_PROMPTS_MIB
