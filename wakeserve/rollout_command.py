"""``wakeserve rollout``: start, follow, promote or abort a canary rollout through the gateway of ``up``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import httpx


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("rollout", help="roll a new model version out to a function's replicas (canary)")
    p.add_argument("function")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--model-uri", help="artifacts of the new version: local directory or s3://bucket/prefix")
    action.add_argument("--status", action="store_true", help="show the rollout and per-version metrics")
    action.add_argument("--promote", action="store_true", help="promote the candidate now")
    action.add_argument("--abort", action="store_true", help="roll back now")
    p.add_argument("--version", help="version label of the new version (required to start a rollout)")
    p.add_argument("--steps", help="traffic percentages, comma-separated (default 1,5,25,100)")
    p.add_argument("--hold", type=float, dest="hold_s", help="seconds each step is held (default 30)")
    p.add_argument("--min-requests", type=int, help="candidate requests a step needs before advancing (default 20)")
    p.add_argument("--error-ratio", type=float, help="roll back above this times the stable error rate (1.5)")
    p.add_argument("--latency-ratio", type=float, help="roll back above this times the stable p99 (1.5)")
    p.add_argument(
        "--probe-after",
        type=float,
        dest="probe_after_s",
        help="seconds a step waits for candidate requests before probing with golden inputs (default 10)",
    )
    p.add_argument("--probe-rounds", type=int, help="golden calls per version, replica and observation (default 5)")
    p.add_argument("--skip-gate", action="append", dest="skip_gates", help="golden, latency, memory or contract")
    p.add_argument("--new-contract", action="store_true", help="the new version changes inputs or outputs")
    p.add_argument("--wait", action="store_true", help="follow the rollout until it ends; exit 1 unless promoted")
    p.add_argument("--url", help="gateway URL (default http://127.0.0.1:$WAKESERVE_HTTP_PORT or :8080)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"version": args.version}
    if args.model_uri:
        body["model_uri"] = args.model_uri
    if args.steps:
        body["steps"] = [float(s) for s in args.steps.split(",")]
    for key in (
        "hold_s",
        "min_requests",
        "error_ratio",
        "latency_ratio",
        "probe_after_s",
        "probe_rounds",
        "skip_gates",
    ):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.new_contract:
        body["new_contract"] = True
    return body


def ms(value: object) -> str:
    """A duration in milliseconds as printed: a number, or ``-`` when there is none yet."""
    return f"{value:g} ms" if isinstance(value, int | float) else "-"


def _metrics_line(version: str, kind: str, m: dict[str, Any]) -> str:
    return (
        f"  {version:<24} {kind:<9} requests {m['requests']:>6}  errors {m['errors']:>4}  "
        f"p50 {ms(m['p50_ms'])}  p95 {ms(m['p95_ms'])}  p99 {ms(m['p99_ms'])}"
    )


def summary(state: dict[str, Any]) -> str:
    rollout = state.get("rollout")
    head = f"{state['function']}: stable {state['stable']}"
    if not rollout:
        return head + "; no rollout"
    basis = f" [evidence: {rollout['basis']}]" if rollout.get("basis") else ""
    lines = [
        head,
        f"rollout to {rollout['candidate']}: {rollout['phase']} at {rollout['percent']:g}% "
        f"(step {rollout['step'] + 1}/{len(rollout['steps'])}) {rollout['reason']}{basis}",
    ]
    for version, m in rollout["step_metrics"].items():
        lines.append(_metrics_line(version, "user", m))
    for version, m in (rollout.get("synthetic_step_metrics") or {}).items():
        if m["requests"]:
            lines.append(_metrics_line(version, "synthetic", m))
    if rollout.get("probe_refused"):
        lines.append(f"  no synthetic probes: {rollout['probe_refused']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from wakeserve.settings import UpSettings

    settings = UpSettings()
    url = (args.url or f"http://127.0.0.1:{settings.http_port}").rstrip("/")
    # Rollouts need the admin token; the gateway accepts it in place of its own token too.
    token = os.environ.get("WAKESERVE_ADMIN_TOKEN") or (
        settings.gateway_token.get_secret_value() if settings.gateway_token else None
    )
    headers = {"authorization": f"Bearer {token}"} if token else {}
    base = f"{url}/wakeserve/functions/{args.function}/rollout"
    try:
        with httpx.Client(headers=headers, timeout=30) as client:
            if args.model_uri or (args.version and not (args.status or args.promote or args.abort)):
                if not args.version:
                    print("wakeserve rollout: --version is required to start a rollout", file=sys.stderr)
                    return 2
                response = client.post(base, json=_body(args))
            elif args.promote or args.abort:
                response = client.post(f"{base}/{'promote' if args.promote else 'abort'}")
            else:
                response = client.get(base)
            if response.status_code >= 400:
                print(f"wakeserve rollout: {response.status_code}: {response.text}", file=sys.stderr)
                return 1
            state = response.json()
            while args.wait and state.get("rollout") and state["rollout"]["phase"] in ("loading", "canary"):
                print(summary(state), flush=True)
                time.sleep(2)
                state = client.get(base).json()
    except httpx.HTTPError as exc:
        print(f"wakeserve rollout: cannot reach {url}: {exc} (is `wakeserve up` running?)", file=sys.stderr)
        return 1
    print(json.dumps(state, indent=2) if args.json else summary(state))
    if args.wait:
        return 0 if (state.get("rollout") or {}).get("phase") == "promoted" else 1
    return 0
