"""The WAKESERVE_* variables in the manifests are settings fields, parse, and give a working configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from events.settings import EventSettings
from functions import catalog
from functions.serving.settings import PredictorSettings
from scalers.external import ScalerSettings
from tests.manifests import entrypoints
from tests.manifests.rendering import MANIFESTS, OVERLAYS, REPO, Rendered, ref
from wakeserve.manifests import cpu_quantity


def every_variable(r: Rendered) -> dict[str, set[str]]:
    """WAKESERVE_* name -> where it is set (container env, ConfigMap data)."""
    found: dict[str, set[str]] = {}
    for obj, _, container in r.containers():
        for item in container.get("env") or []:
            found.setdefault(item["name"], set()).add(ref(obj))
    for cm in r.of_kind("ConfigMap"):
        for key in cm.get("data") or {}:
            found.setdefault(key, set()).add(ref(cm))
    return {name: where for name, where in found.items() if name.startswith("WAKESERVE_")}


@pytest.mark.parametrize("name", [f"overlays/{o}" for o in OVERLAYS] + ["base"])
def test_every_variable_is_a_settings_field(rendered: dict[str, Rendered], name: str) -> None:
    known = entrypoints.variables(*entrypoints.ALL_SETTINGS)
    unknown = {v: sorted(where) for v, where in every_variable(rendered[name]).items() if v not in known}
    assert unknown == {}


def test_the_check_knows_a_misspelt_variable() -> None:
    assert "WAKESERVE_KAFKA_BOOTSTRAP" in entrypoints.variables(EventSettings)
    assert "WAKESERVE_KAFKA_BOOTSTRAP_SERVERS" not in entrypoints.variables(*entrypoints.ALL_SETTINGS)


def test_config_map_topics_are_the_codes_defaults(rendered: dict[str, Rendered]) -> None:
    # The manifests spell the names out; they must stay what the code computes when nothing is set.
    defaults = EventSettings.model_construct()
    config = rendered["base"].config_maps()["wakeserve-config"]
    for field in ("topic_prefix", "results_topic", "deadletter_topic", "payload_buckets", "results_bucket"):
        assert config[entrypoints.variable(field)] == getattr(defaults, field), field


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_container_gets_a_valid_working_configuration(
    rendered: dict[str, Rendered], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = rendered[f"overlays/{overlay}"]
    functions = {isvc["metadata"]["name"] for isvc in r.of_kind("InferenceService")}
    dockerfile = (REPO / "Dockerfile").read_text()
    seen = set()
    for obj, _, container in r.containers():
        where = f"{ref(obj)}/{container['name']}"
        args = entrypoints.parse(container["args"])
        seen.add(args.command)
        env, problems = entrypoints.environment(r, container)
        assert problems == [], where
        # Variables set one by one (not the shared ConfigMap) must be read by this entry point.
        own = {e["name"] for e in container.get("env") or [] if e["name"].startswith("WAKESERVE_")}
        assert own <= entrypoints.variables(*entrypoints.SETTINGS[args.command]), where
        with monkeypatch.context() as m:
            for key in [k for k in os.environ if k.startswith("WAKESERVE_")]:
                m.delenv(key)
            for key, value in env.items():
                m.setenv(key, value)
            settings = entrypoints.effective_settings(args.command, args)  # raises if a value does not parse
        for cls in entrypoints.SETTINGS[args.command]:
            missing = [f for f, info in cls.model_fields.items() if info.is_required() and f not in settings]
            assert missing == [], f"{where}: required {cls.__name__} fields unset: {missing}"
        events = settings["EventSettings"]
        assert isinstance(events, EventSettings)
        for server in events.kafka_bootstrap.split(","):
            host = server.rsplit(":", 1)[0]
            assert host != "localhost" and not host.startswith("127."), f"{where}: Kafka at {server} is the pod itself"
        if args.command == "serve":
            predictor = settings["PredictorSettings"]
            assert isinstance(predictor, PredictorSettings)
            assert args.function == obj["metadata"]["name"] and args.function in catalog.FUNCTIONS, where
            assert predictor.host == "0.0.0.0", f"{where}: the kubelet and the Service cannot reach 127.0.0.1"
            assert str(predictor.model_cache_dir).startswith("/var/cache/wakeserve/"), where
            assert "/var/cache/wakeserve" in dockerfile, "the image must create the writable cache directory"
            cpu = cpu_quantity(container["resources"]["requests"]["cpu"])
            assert predictor.torch_threads == max(1, int(cpu)), f"{where}: one torch thread per requested CPU"
        elif args.command == "ingress":
            assert args.host == "0.0.0.0", where
            assert set(args.functions.split(",")) == functions, f"{where}: --functions must list {functions}"
        elif args.command == "scaler":
            scaler = settings["ScalerSettings"]
            assert isinstance(scaler, ScalerSettings) and scaler.scaler_host == "0.0.0.0", where
        elif args.command == "dispatch":
            assert args.function in functions, where
    assert {"serve", "ingress"} <= seen


def test_entrypoint_args_are_checked_by_the_real_parser() -> None:
    assert entrypoints.parse(["serve", "embedder", "--consume"]).consume is True
    with pytest.raises(ValueError, match="unrecognized arguments: --consumer"):
        entrypoints.parse(["serve", "embedder", "--consumer"])
    with pytest.raises(ValueError, match="--target-url"):
        entrypoints.parse(["dispatch", "embedder"])


def test_base_keeps_only_the_literal_variables_wakeserve_up_passes_on() -> None:
    # `wakeserve up` hands every literal WAKESERVE_* of an InferenceService container to its replicas; the rest
    # of the configuration must come from the ConfigMap or Secret, which `up` ignores.
    for path in (MANIFESTS / "base").glob("*/inferenceservice.yaml"):
        isvc = yaml.safe_load(path.read_text())
        container = isvc["spec"]["predictor"]["containers"][0]
        literal = {e["name"] for e in container.get("env") or [] if "value" in e}
        assert literal <= {"WAKESERVE_MODEL_URI", "WAKESERVE_TORCH_THREADS"}, Path(path).relative_to(REPO)
