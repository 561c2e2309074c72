"""Names that controllers derive and other objects refer to by string agree after kustomize."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from events.settings import EventSettings
from tests.manifests import references
from tests.manifests.rendering import MANIFESTS, OVERLAYS, Rendered, kustomize

CHECKS = {
    "scale targets": lambda r: references.scale_target_errors(r),
    "kafka triggers": lambda r: references.kafka_trigger_errors(r, EventSettings()),
    "wakeserve scaler": lambda r: references.external_scaler_errors(r, EventSettings()),
    "http add-on": references.http_addon_errors,
    "dispatchers": references.dispatcher_errors,
    "eventing": lambda r: references.eventing_errors(r, EventSettings()),
    "services": references.service_errors,
}


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_references_hold(rendered: dict[str, Rendered], overlay: str, check: str) -> None:
    assert CHECKS[check](rendered[f"overlays/{overlay}"]) == []


def test_each_overlay_exercises_the_checks_that_concern_it(rendered: dict[str, Rendered]) -> None:
    # A check that finds nothing to look at would pass vacuously; make sure the objects are there.
    knative, keda = rendered["overlays/knative"], rendered["overlays/keda"]
    functions = len(rendered["base"].of_kind("InferenceService"))
    assert functions == 3
    # A request Trigger per function, plus the results and errors Triggers.
    assert len(knative.of_kind("Trigger")) == functions + 2 and len(knative.of_kind("ScaledObject")) == functions
    assert [c for o, _, c in knative.containers() if (c.get("args") or [])[:1] == ["dispatch"]]
    assert len(keda.of_kind("HTTPScaledObject")) == functions
    assert all(len(so["spec"]["triggers"]) == 3 for so in keda.of_kind("ScaledObject"))


def render_with(tmp_path: Path, overlay: str, extra: str) -> Rendered:
    """An overlay on ``overlay`` with ``extra`` kustomization fields (kustomize wants a relative path)."""
    base = os.path.relpath(MANIFESTS / "overlays" / overlay, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [{base}]\n{extra}\n"
    )
    return Rendered(str(tmp_path), kustomize(tmp_path))


@pytest.mark.slow  # renders a temporary overlay with kubectl per case
@pytest.mark.parametrize(
    ("overlay", "check", "broken"),
    [
        ("keda", "scale targets", "staging-embedder-predictor"),
        ("keda", "http add-on", "scaleTargetRef"),
        ("knative", "scale targets", "embedder-dispatch"),
        ("knative", "dispatchers", "staging-embedder"),
        ("knative", "eventing", "embedder-predictor"),
    ],
)
def test_a_name_prefix_breaks_derived_references_and_the_checks_say_so(
    rendered: dict[str, Rendered], tmp_path: Path, overlay: str, check: str, broken: str
) -> None:
    # namePrefix renames the InferenceService (so KServe's <name>-predictor) and the dispatchers, but not the
    # strings in ScaledObjects, HTTPScaledObjects, --target-url and Trigger subscribers that point at them.
    errors = CHECKS[check](render_with(tmp_path, overlay, "namePrefix: staging-"))
    assert any(broken in e for e in errors), errors


def test_a_wrong_topic_is_reported(rendered: dict[str, Rendered], tmp_path: Path) -> None:
    patched = render_with(
        tmp_path,
        "keda",
        "patches:\n  - target: {kind: ScaledObject, name: embedder}\n    patch: |-\n"
        "      - {op: replace, path: /spec/triggers/0/metadata/topic, value: embedder.requests}\n",
    )
    assert any("wakeserve.embedder.requests" in e for e in CHECKS["kafka triggers"](patched))
    assert any("different lags" in e for e in CHECKS["wakeserve scaler"](patched))
