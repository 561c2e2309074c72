"""Render the kustomizations under manifests/ with ``kubectl kustomize`` and look objects up in the result."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
# The deployable topologies, and the kustomizations that only make sense next to one.
OVERLAYS = ("knative", "keda", "dev")
KUSTOMIZATIONS = {
    **{f"overlays/{name}": MANIFESTS / "overlays" / name for name in OVERLAYS},
    "base": MANIFESTS / "base",
    "overlays/knative-canary": MANIFESTS / "overlays" / "knative-canary",
    "kafka/topics": MANIFESTS / "kafka" / "topics",
    "kafka/dev": MANIFESTS / "kafka" / "dev",
}
KUBECTL = shutil.which("kubectl")


class RenderError(RuntimeError):
    """kubectl kustomize failed; the message carries its stderr."""


def kustomize(path: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize path`` renders (kubectl's embedded kustomize; no cluster involved)."""
    if KUBECTL is None:
        raise RenderError("kubectl is not on PATH")
    done = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RenderError(f"kubectl kustomize {path} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def ref(obj: dict[str, Any]) -> str:
    """``Kind/namespace/name``, how failures name an object."""
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


@dataclass
class Rendered:
    """The objects of one rendered kustomization."""

    name: str
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def find(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        for obj in self.of_kind(kind):
            meta = obj["metadata"]
            if meta["name"] == name and (namespace is None or meta.get("namespace") == namespace):
                return obj
        return None

    def containers(self) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
        """(object, pod spec, container) for every container of a Deployment or an InferenceService predictor."""
        for obj in self.objects:
            if obj.get("kind") == "Deployment":
                pod = obj["spec"]["template"]["spec"]
            elif obj.get("kind") == "InferenceService":
                pod = obj["spec"]["predictor"]
            else:
                continue
            for container in pod.get("containers") or []:
                yield obj, pod, container

    def config_maps(self) -> dict[str, dict[str, str]]:
        return {o["metadata"]["name"]: dict(o.get("data") or {}) for o in self.of_kind("ConfigMap")}


def deployment_mode(isvc: dict[str, Any]) -> str:
    """KServe's mode of an InferenceService; the legacy spellings mean the same (KServe normalises them)."""
    mode = str((isvc["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode", "Standard"))
    return {"Serverless": "Knative", "RawDeployment": "Standard"}.get(mode, mode)


def predictor_name(isvc: dict[str, Any]) -> str:
    """The name KServe gives the predictor's workload: a Deployment and Service (Standard mode) or a Knative
    Service (Knative mode). It derives from the InferenceService's rendered name, so a namePrefix moves it."""
    return f"{isvc['metadata']['name']}-predictor"
