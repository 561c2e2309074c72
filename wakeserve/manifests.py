"""Read each function's scaling parameters from the same manifests the cluster uses.

A function is an InferenceService (KServe; its Knative autoscaling annotations and predictor fields give the
KPA parameters) plus, optionally, a KEDA ScaledObject with a kafka trigger (lag scaling). The two are paired
by the ``wakeserve.dev/function`` label, or by the ScaledObject targeting ``<name>-predictor``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scalers.keda import KafkaTrigger, ScaledObjectSpec
from scalers.kpa import KpaSpec

FUNCTION_LABEL = "wakeserve.dev/function"


class ManifestError(ValueError):
    """A manifest is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class FunctionManifest:
    """Everything ``wakeserve up`` needs to run and scale one function."""

    name: str
    kpa: KpaSpec
    trigger: KafkaTrigger | None
    scaled_object: ScaledObjectSpec | None
    env: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def min_replicas(self) -> int:
        lower = self.kpa.min_scale
        if self.scaled_object is not None:
            lower = max(lower, self.scaled_object.min_replicas)
        return lower

    @property
    def max_replicas(self) -> int:
        bounds = [b for b in (self.kpa.max_scale, self.scaled_object.max_replicas if self.scaled_object else 0) if b]
        return max(bounds) if bounds else 1


def read_documents(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every YAML document under ``root`` (a file or a directory, recursively), with the file it came from."""
    if not root.exists():
        raise ManifestError(f"no manifests at {root}")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*.y*ml") if p.is_file())
    documents: list[tuple[str, dict[str, Any]]] = []
    for path in files:
        try:
            for doc in yaml.safe_load_all(path.read_text()):
                if isinstance(doc, dict) and "kind" in doc:
                    documents.append((str(path), doc))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path}: not valid YAML: {exc}") from exc
    return documents


def _function_of(doc: Mapping[str, Any]) -> str | None:
    labels = (doc.get("metadata") or {}).get("labels") or {}
    name = labels.get(FUNCTION_LABEL)
    if name:
        return str(name)
    target = str(((doc.get("spec") or {}).get("scaleTargetRef") or {}).get("name", ""))
    return target.removesuffix("-predictor") if target.endswith("-predictor") else None


def cpu_quantity(raw: object) -> float:
    """A Kubernetes CPU quantity ("2", "0.5", "500m") in cores."""
    text = str(raw).strip()
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ManifestError(f"not a CPU quantity: {raw!r}") from None


def _container_env(isvc: Mapping[str, Any]) -> dict[str, str]:
    containers = ((isvc.get("spec") or {}).get("predictor") or {}).get("containers") or []
    env: dict[str, str] = {}
    for container in containers[:1]:
        for item in container.get("env") or []:
            # Only literal values: references to Secrets/ConfigMaps are resolved by the cluster, not here.
            if "value" in item and str(item.get("name", "")).startswith("WAKESERVE_"):
                env[str(item["name"])] = str(item["value"])
        cpu = ((container.get("resources") or {}).get("requests") or {}).get("cpu")
        if cpu is not None and "WAKESERVE_TORCH_THREADS" not in env:
            # One torch thread per requested CPU: replicas sharing a machine must not oversubscribe it.
            env["WAKESERVE_TORCH_THREADS"] = str(max(1, int(cpu_quantity(cpu))))
    return env


def parse_functions(documents: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, FunctionManifest]:
    """Pair InferenceServices with their ScaledObjects and parse both; errors name the file."""
    services: dict[str, tuple[str, Mapping[str, Any]]] = {}
    scaled: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for source, doc in documents:
        kind = doc.get("kind")
        if kind == "InferenceService":
            name = _function_of(doc) or str((doc.get("metadata") or {}).get("name", ""))
            services[name] = (source, doc)
        elif kind == "ScaledObject":
            name = _function_of(doc) or ""
            if name:
                scaled[name] = (source, doc)
    functions: dict[str, FunctionManifest] = {}
    for name, (source, isvc) in sorted(services.items()):
        try:
            kpa = KpaSpec.from_inference_service(isvc)
        except ValueError as exc:
            raise ManifestError(f"{source}: InferenceService {name}: {exc}") from exc
        trigger: KafkaTrigger | None = None
        spec: ScaledObjectSpec | None = None
        if name in scaled:
            so_source, so = scaled[name]
            kafka = [t for t in (so.get("spec") or {}).get("triggers") or [] if t.get("type") == "kafka"]
            if len(kafka) != 1:
                raise ManifestError(f"{so_source}: ScaledObject {name}: expected exactly one kafka trigger")
            try:
                trigger = KafkaTrigger.from_metadata({k: str(v) for k, v in (kafka[0].get("metadata") or {}).items()})
                spec = ScaledObjectSpec.from_manifest(so.get("spec") or {})
            except ValueError as exc:
                raise ManifestError(f"{so_source}: ScaledObject {name}: {exc}") from exc
        functions[name] = FunctionManifest(name, kpa, trigger, spec, _container_env(isvc), source)
    orphans = sorted(set(scaled) - set(services))
    if orphans:
        raise ManifestError(f"ScaledObjects without an InferenceService: {', '.join(orphans)}")
    return functions


def load_functions(root: Path) -> dict[str, FunctionManifest]:
    functions = parse_functions(read_documents(root))
    if not functions:
        raise ManifestError(f"no InferenceService found under {root}")
    return functions
