"""The manifests step of docs/functions.md: a new function's directory, made from the embedder's, renders and
is read by ``wakeserve up`` as a function of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from functions import catalog
from tests.manifests import entrypoints
from tests.manifests.rendering import KUBECTL, MANIFESTS, Rendered, kustomize
from wakeserve.manifests import load_functions

TEMPLATE = "embedder"


def add_function(base: Path, name: str) -> None:
    """What the guide says to do: copy the template's directory, rename, list both files in the kustomization."""
    target = base / name
    shutil.copytree(base / TEMPLATE, target)
    for path in target.glob("*.yaml"):
        path.write_text(path.read_text().replace(TEMPLATE, name))
    kustomization = base / "kustomization.yaml"
    doc = yaml.safe_load(kustomization.read_text())
    doc["resources"] += [f"{name}/inferenceservice.yaml", f"{name}/scaledobject.yaml"]
    kustomization.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture
def base(tmp_path: Path) -> Path:
    copy = tmp_path / "base"
    shutil.copytree(MANIFESTS / "base", copy)
    add_function(copy, "tiny")
    return copy


def test_the_new_function_is_read_like_the_template(base: Path) -> None:
    functions = load_functions(base)
    assert {"embedder", "classifier", "tiny"} <= set(functions)
    tiny, template = functions["tiny"], functions[TEMPLATE]
    assert tiny.trigger is not None and tiny.trigger.topic == "wakeserve.tiny.requests"
    assert tiny.trigger.consumer_group == "wakeserve-tiny"
    assert (tiny.kpa, tiny.max_replicas) == (template.kpa, template.max_replicas)


def test_the_new_function_renders_and_its_container_serves_it(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if KUBECTL is None:
        pytest.skip(
            "kubectl is not on PATH, so the kustomization cannot be rendered (kubectl >= 1.27 embeds kustomize)"
        )
    rendered = Rendered("base+tiny", kustomize(base))
    isvc = rendered.find("InferenceService", "tiny", "wakeserve")
    scaled = rendered.find("ScaledObject", "tiny", "wakeserve")
    assert isvc is not None and scaled is not None
    assert isvc["metadata"]["labels"]["wakeserve.dev/function"] == "tiny"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "tiny-predictor"
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["metadata"]["topic"] == "wakeserve.tiny.requests"
    [container] = isvc["spec"]["predictor"]["containers"]
    args = entrypoints.parse(container["args"])
    monkeypatch.setenv(catalog.ENV_VAR, "tiny=tests.support.tinyfunction:Tiny")
    assert args.command == "serve" and args.function == "tiny" and args.function in catalog.FUNCTIONS
