"""Validation of rendered objects: built-in kinds with kubernetes-validate, custom kinds against upstream CRDs.

The CRDs and skaffold's JSON schemas come from ``../shared/schemas`` (read-only, see its SOURCES.txt).
Kubernetes prunes unknown fields of a custom object silently; to catch typos the way ``kubectl apply
--validate=strict`` does, every object schema that lists its properties and does not preserve unknown fields
is closed (``additionalProperties: false``) before validating. CEL rules (``x-kubernetes-validations``) are
evaluated by the small table below; a rule missing from it fails the validation, so a new upstream rule is
noticed rather than skipped.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.manifests.rendering import REPO

SHARED_SCHEMAS = REPO.parent / "shared" / "schemas"
CRDS = SHARED_SCHEMAS / "crds"
SKAFFOLD_SCHEMAS = SHARED_SCHEMAS / "skaffold"
# Built-in kinds are validated against this Kubernetes release (kubectl here is 1.32; KServe 0.15+, KEDA 2.17+
# and Knative 1.18+ support it). kubernetes-validate ships the schemas of 1.25 to 1.37.
KUBERNETES_VERSION = "1.32"
# Strimzi's CRDs are not among the shared schemas; KafkaTopic gets the hand-written rules of kafka_topic_errors.
WITHOUT_CRD = {("kafka.strimzi.io", "KafkaTopic")}
NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def _has_both_or_neither(a: str, b: str) -> Callable[[dict[str, Any]], bool]:
    return lambda value: (a in value) != (b in value)


def _min_not_above_max(value: dict[str, Any]) -> bool:
    return "minReplicaCount" not in value or value["minReplicaCount"] <= value.get("maxReplicaCount", 100)


# The CEL rules of the shared CRDs, as Python. Keys are the rules verbatim.
CEL_RULES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "has(self.portName) != has(self.port)": _has_both_or_neither("portName", "port"),
    "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)": (
        _min_not_above_max
    ),
}


def _close(schema: Any) -> Any:
    """A copy of an openAPIV3Schema that rejects fields it does not declare (strict field validation)."""
    if isinstance(schema, list):
        return [_close(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {k: _close(v) for k, v in schema.items()}
    if (
        "properties" in closed
        and "additionalProperties" not in closed
        and not closed.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    # A CRD declares metadata as a bare object (no properties), so it stays open here; custom_errors checks
    # ObjectMeta separately, as the API server does.
    return closed


@cache
def crd_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> closed openAPIV3Schema, for every served version of every shared CRD."""
    schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        with path.open() as f:
            crd = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True) and "schema" in version:
                schema = _close(version["schema"]["openAPIV3Schema"])
                # The API server adds these to every CRD's root; some CRDs (Knative's) do not spell them out.
                for field, kind_of in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object")):
                    schema.setdefault("properties", {}).setdefault(field, {"type": kind_of})
                schemas[(group, version["name"], kind)] = schema
    return schemas


def _cel_errors(schema: Any, value: Any, path: str) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        check = CEL_RULES.get(rule["rule"])
        if check is None:
            yield f"{path}: CEL rule not evaluated by tests/manifests/schemas.py: {rule['rule']}"
        elif isinstance(value, dict) and not check(value):
            yield f"{path}: {rule.get('message') or rule['rule']}"
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                yield from _cel_errors(sub, value[key], f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _cel_errors(schema["items"], item, f"{path}[{i}]")


def _metadata_errors(obj: dict[str, Any]) -> list[str]:
    # ObjectMeta of a custom object gets the API server's built-in checks: validate it as a ConfigMap's.
    try:
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata") or {}},
            KUBERNETES_VERSION,
            strict=True,
        )
    except kubernetes_validate.ValidationError as exc:
        return [f"metadata: {exc.message}"]
    name = (obj.get("metadata") or {}).get("name", "")
    return [] if NAME.fullmatch(name) and len(name) <= 253 else [f"metadata.name {name!r} is not a DNS subdomain"]


def group_version(obj: dict[str, Any]) -> tuple[str, str]:
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    return group, version


def is_builtin(obj: dict[str, Any]) -> bool:
    group, _ = group_version(obj)
    return group == "" or group.endswith(".k8s.io") or "." not in group


def builtin_errors(obj: dict[str, Any]) -> list[str]:
    """kubernetes-validate --strict on one built-in object; a kind it does not know is an error too."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(str(p) for p in exc.path)}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


def custom_errors(obj: dict[str, Any]) -> list[str]:
    """Errors of one custom object against the openAPIV3Schema of its CRD version (closed), CEL rules included."""
    group, version = group_version(obj)
    schema = crd_schemas().get((group, version, str(obj.get("kind"))))
    if schema is None:
        return [f"no CRD for {obj.get('apiVersion')} {obj.get('kind')} in {CRDS}"]
    validator = jsonschema.Draft4Validator(schema)
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]
    return errors + list(_cel_errors(schema, obj, "")) + _metadata_errors(obj)


def kafka_topic_errors(obj: dict[str, Any]) -> list[str]:
    """Strimzi's KafkaTopic v1beta2 (043-Crd-kafkatopic.yaml upstream), the fields and bounds the CRD declares."""
    errors = _metadata_errors(obj)
    if obj.get("apiVersion") != "kafka.strimzi.io/v1beta2":
        errors.append(f"apiVersion {obj.get('apiVersion')!r}: expected kafka.strimzi.io/v1beta2")
    if set(obj) - {"apiVersion", "kind", "metadata", "spec"}:
        errors.append(f"unknown top-level fields {sorted(set(obj) - {'apiVersion', 'kind', 'metadata', 'spec'})}")
    if not ((obj.get("metadata") or {}).get("labels") or {}).get("strimzi.io/cluster"):
        errors.append("metadata.labels: strimzi.io/cluster names the Kafka cluster and is required")
    spec = obj.get("spec") or {}
    if set(spec) - {"partitions", "replicas", "config", "topicName"}:
        errors.append(f"spec: unknown fields {sorted(set(spec) - {'partitions', 'replicas', 'config', 'topicName'})}")
    for key, low, high in (("partitions", 1, None), ("replicas", 1, 32767)):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or value < low or (high is not None and value > high)):
            errors.append(f"spec.{key}: {value!r} is not an integer in [{low}, {high or 'inf'}]")
    if not isinstance(spec.get("config", {}), dict):
        errors.append("spec.config must be an object")
    return errors


def object_errors(obj: dict[str, Any]) -> list[str]:
    group, _ = group_version(obj)
    if (group, obj.get("kind")) in WITHOUT_CRD:
        return kafka_topic_errors(obj)
    return builtin_errors(obj) if is_builtin(obj) else custom_errors(obj)


def skaffold_schema(api_version: str) -> dict[str, Any]:
    """The JSON schema of ``apiVersion: skaffold/<version>``."""
    version = api_version.removeprefix("skaffold/")
    schema: dict[str, Any] = json.loads((SKAFFOLD_SCHEMAS / f"{version}.json").read_text())
    return schema


def skaffold_errors(config: dict[str, Any]) -> list[str]:
    schema = skaffold_schema(str(config.get("apiVersion")))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(config)]


def with_change(obj: dict[str, Any], path: list[str | int], value: Any) -> dict[str, Any]:
    """A deep copy of ``obj`` with one value set, for tests that prove a validator catches a mistake."""
    changed = copy.deepcopy(obj)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


def schemas_available() -> bool:
    return CRDS.is_dir() and SKAFFOLD_SCHEMAS.is_dir()
