"""Rollouts on the cluster: a KServe canary on the knative topology, and watch mode in the skaffold loop."""

from __future__ import annotations

import yaml

from functions.serving.settings import PredictorSettings
from tests.manifests.rendering import REPO, Rendered, deployment_mode, ref


def env(isvc: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in isvc["spec"]["predictor"]["containers"][0]["env"]}


def test_the_canary_overlay_changes_only_the_classifier_predictor(rendered: dict[str, Rendered]) -> None:
    canary, knative = rendered["overlays/knative-canary"], rendered["overlays/knative"]
    changed = [ref(o) for o in canary.objects if o not in knative.objects]
    assert changed == [ref(knative.find("InferenceService", "classifier"))]
    isvc = canary.find("InferenceService", "classifier")
    assert isvc is not None and deployment_mode(isvc) == "Knative"  # canaryTrafficPercent needs Knative mode
    percent = isvc["spec"]["predictor"]["canaryTrafficPercent"]
    assert isinstance(percent, int) and 0 < percent < 100
    before, after = env(knative.find("InferenceService", "classifier")), env(isvc)
    assert before["WAKESERVE_MODEL_URI"] != after["WAKESERVE_MODEL_URI"]
    assert after["WAKESERVE_MODEL_URI"].endswith("/v2") and after["WAKESERVE_MODEL_VERSION"] == "v2"
    assert "model_version" in PredictorSettings.model_fields


def test_the_dev_loop_runs_predictors_in_watch_mode_on_the_synced_sources(rendered: dict[str, Rendered]) -> None:
    config = rendered["overlays/dev"].config_maps()["wakeserve-config"]
    assert config["WAKESERVE_WATCH"] == "true" and PredictorSettings(watch=config["WAKESERVE_WATCH"]).watch
    for name, r in rendered.items():
        if name != "overlays/dev":
            assert "WAKESERVE_WATCH" not in r.config_maps().get("wakeserve-config", {}), name
    # skaffold copies edited function sources to where the image imports them from.
    skaffold = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    sync = skaffold["build"]["artifacts"][0]["sync"]["manual"]
    assert {"src": "functions/**/*.py", "dest": "/app"} in sync
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "PYTHONPATH=/app" in dockerfile and "functions /app/functions" in dockerfile
