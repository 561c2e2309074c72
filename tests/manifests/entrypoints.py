"""What a rendered container runs: its command line parsed by the real CLI, and the environment it receives."""

from __future__ import annotations

import argparse
import contextlib
import io
from typing import Any

from pydantic_settings import BaseSettings

from events.settings import EventSettings
from functions.serving.settings import PredictorSettings
from scalers.external import ScalerSettings
from tests.manifests.rendering import Rendered
from wakeserve import cli, scaler_command
from wakeserve.settings import UpSettings

# The settings classes each cluster entry point reads (docs/configuration.md).
SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "serve": (PredictorSettings, EventSettings),
    "dispatch": (EventSettings,),
    "ingress": (EventSettings,),
    "scaler": (EventSettings, ScalerSettings),
}
ALL_SETTINGS = (PredictorSettings, EventSettings, UpSettings, ScalerSettings)
# Stand-ins for the keys of the Secret wakeserve-kafka (docs/deploy.md), so settings can be built from them.
SECRET_VALUES = {
    "protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "user": "wakeserve",
    "password": "not-a-real-password",
    "ca.crt": "-----BEGIN CERTIFICATE-----",
    "keda.sasl": "scram_sha512",
    "keda.tls": "enable",
}


def variable(field: str) -> str:
    return f"WAKESERVE_{field.upper()}"


def variables(*classes: type[BaseSettings]) -> set[str]:
    return {variable(f) for cls in classes for f in cls.model_fields}


def parse(args: list[str]) -> argparse.Namespace:
    """The container's args parsed by the `wakeserve` parser; ValueError with argparse's message if refused."""
    parser = argparse.ArgumentParser(prog="wakeserve")
    sub = parser.add_subparsers(dest="command", required=True)
    cli._add_serve(sub)
    cli._add_async(sub)
    cli._add_up(sub)
    scaler_command.add_parser(sub)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parser.parse_args(args)
    except SystemExit:
        raise ValueError(stderr.getvalue().strip()) from None


def environment(r: Rendered, container: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The variables the container gets (Secret keys replaced by stand-ins) and the problems met on the way."""
    config_maps = r.config_maps()
    env: dict[str, str] = {}
    problems: list[str] = []
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            if name in config_maps:
                env.update(config_maps[name])
            elif not source["configMapRef"].get("optional"):
                problems.append(f"envFrom ConfigMap {name} is not rendered")
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        value_from = item.get("valueFrom") or {}
        if "secretKeyRef" in value_from:
            key = value_from["secretKeyRef"]["key"]
            if key not in SECRET_VALUES:
                problems.append(f"{item['name']} reads Secret key {key!r}, not one of docs/deploy.md's")
            env[item["name"]] = SECRET_VALUES.get(key, "")
        elif "configMapKeyRef" in value_from:
            ref = value_from["configMapKeyRef"]
            env[item["name"]] = config_maps.get(ref["name"], {}).get(ref["key"], "")
    return env, problems


def effective_settings(command: str, args: argparse.Namespace) -> dict[str, BaseSettings]:
    """The settings objects the entry point builds from the current environment and its flags."""
    flags = {k: v for k, v in vars(args).items() if v is not None}
    if command == "scaler":
        flags = {f"scaler_{k}": v for k, v in flags.items() if k in ("host", "port")} | flags
    return {cls.__name__: cls(**{k: v for k, v in flags.items() if k in cls.model_fields}) for cls in SETTINGS[command]}
