"""The ``wakeserve`` command line: one entry point that finds a running ``up`` and reports failures in one line.

Every command but ``up`` resolves its endpoints as flag > ``WAKESERVE_*`` variable > the context file of a
running ``wakeserve up`` > default (:mod:`wakeserve.endpoints`). An expected failure (an endpoint that does not
answer, missing credentials, a bad setting) is one line on stderr and exit code 1; ``--debug`` shows the
traceback instead (:mod:`wakeserve.failures`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wakeserve import context, logs, rollout_command, scaler_command
from wakeserve.endpoints import Endpoint, Resolution, Source, state_dir

if TYPE_CHECKING:
    from events.settings import EventSettings

EVENT_FLAGS = ("kafka_bootstrap", "s3_endpoint")


def _add_serve(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run one replica of a function (KServe v2 over REST and gRPC)")
    p.add_argument("function", help="function name: embedder, classifier, echo or generator")
    p.add_argument("--host", help="bind address (default 127.0.0.1; 0.0.0.0 in containers)")
    p.add_argument("--http-port", type=int, help="REST port (default 8080)")
    p.add_argument("--grpc-port", type=int, help="gRPC port (default 8081; 0 disables)")
    p.add_argument("--admin-port", type=int, help="admin listener port (default 8082; 0 picks a free one)")
    p.add_argument("--model-uri", help="artifacts: local directory or s3://bucket/prefix")
    p.add_argument("--model-version", help="version label of the served model (default: what the artifacts declare)")
    p.add_argument("--watch", action="store_true", default=None, help="reload the function's source when it changes")
    p.add_argument("--encoder-uri", help="encoder checkpoint for the classifier: local directory or s3://")
    p.add_argument("--s3-endpoint", help="S3 API endpoint URL (default: AWS)")
    p.add_argument("--max-batch-size", type=int, help="rows per batch; 1 turns batching off")
    p.add_argument("--max-batch-delay-ms", type=float, help="how long a batch may wait to fill")
    p.add_argument("--max-queue", type=int, help="requests that may wait; more are answered 503")
    p.add_argument("--torch-threads", type=int, help="torch intra-op threads")
    p.add_argument("--log-level", help="logging level (default INFO)")
    p.add_argument("--consume", action="store_true", help="also consume the function's request topic (KEDA path)")
    p.add_argument("--kafka-bootstrap", help="Kafka bootstrap servers (default 127.0.0.1:9092)")


def _add_kafka(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kafka-bootstrap", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    p.add_argument("--s3-endpoint", help="S3 API endpoint URL (default: AWS)")


def _add_async(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("dispatch", help="consume a function's request topic and call a remote v2 endpoint")
    p.add_argument("function")
    p.add_argument("--target-url", required=True, help="base URL of the predictor, e.g. http://embedder.default")
    _add_kafka(p)
    p = sub.add_parser("ingress", help="run the CloudEvents HTTP ingress (POST /events)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8088)
    p.add_argument("--functions", default="embedder,classifier,echo,generator", help="comma-separated known functions")
    _add_kafka(p)
    p = sub.add_parser("post", help="post a request event (payload by S3 claim check)")
    p.add_argument("function")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--text", action="append", help="a sentence (repeatable)")
    group.add_argument("--file", help="a v2 inference request JSON file")
    p.add_argument("--inline", action="store_true", help="send the payload inline instead of by dataref")
    p.add_argument("--ingress-url", help="post over HTTP to this ingress instead of producing to Kafka")
    p.add_argument("--wait", action="store_true", help="wait for the result and print it")
    p.add_argument("--timeout", type=float, default=120)
    _add_kafka(p)
    p = sub.add_parser("results", help="print result events")
    p.add_argument("--follow", action="store_true", help="keep printing new results")
    p.add_argument("--from-beginning", action="store_true")
    _add_kafka(p)


def _add_up(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("up", help="run everything on this machine, every function scaled to zero")
    p.add_argument("--host", help="bind address of the gateway, scaler and embedded servers (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, help="gateway port (default 8080)")
    p.add_argument("--kafka-port", type=int, help="embedded Kafka broker port (default 9092)")
    p.add_argument("--s3-port", type=int, help="embedded S3 server port (default 9000)")
    p.add_argument("--scaler-port", type=int, help="KEDA external scaler gRPC port (default 9090; 0 disables)")
    p.add_argument("--manifests", help="directory with the InferenceServices and ScaledObjects (manifests/base)")
    p.add_argument("--functions", help="comma-separated functions to run (default: all in the manifests)")
    p.add_argument("--state-dir", help="logs and the context file other commands read (default .wakeserve)")
    p.add_argument("--hold-timeout-s", type=float, help="how long a request waits for a waking function")
    p.add_argument("--max-held", type=int, help="requests held per function while it wakes")
    p.add_argument("--kafka-bootstrap", help="use this Kafka instead of starting the embedded broker")
    p.add_argument("--s3-endpoint", help="use this S3 endpoint instead of starting the embedded server")
    p.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="level of the log file (default INFO; DEBUG includes other libraries' records)",
    )
    p.add_argument("--log-file", help="where up logs (default <state dir>/up.log); warnings also go to stderr")
    p.add_argument("--quiet", action="store_true", help="plain status lines instead of the live table")
    p.add_argument("--watch", action="store_true", default=None, help="replicas reload function source on change")
    g = p.add_argument_group("overrides of the manifests (experiments and tests)")
    g.add_argument("--stable-window", type=float, dest="stable_window_s", help="KPA stable window, seconds")
    g.add_argument("--scale-to-zero-grace", type=float, dest="scale_to_zero_grace_s", help="seconds")
    g.add_argument("--cooldown-period", type=float, dest="cooldown_period_s", help="KEDA cooldownPeriod, seconds")
    g.add_argument("--polling-interval", type=float, dest="polling_interval_s", help="KEDA pollingInterval, seconds")
    g.add_argument("--max-replicas", type=int, help="maximum replicas of every function")
    g.add_argument("--scale-target", type=float, help="KPA per-replica concurrency target")
    g.add_argument("--lag-threshold", type=int, help="KEDA lagThreshold")
    p = sub.add_parser("status", help="show the replicas, in-flight requests and lag of a running `wakeserve up`")
    p.add_argument("--url", help="gateway URL (default: the running `wakeserve up`, else http://127.0.0.1:8080)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _add_common(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``--state-dir`` and ``--debug`` on every command (``up`` already has its own ``--state-dir``)."""
    for p in sub.choices.values():
        if "--state-dir" not in p._option_string_actions:
            p.add_argument(
                "--state-dir",
                help="state directory of the `wakeserve up` to use (default $WAKESERVE_STATE_DIR or .wakeserve)",
            )
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of failures")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="wakeserve", description="Event-driven, scale-to-zero model inference.")
    root.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    sub = root.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_async(sub)
    _add_up(sub)
    scaler_command.add_parser(sub)
    rollout_command.add_parser(sub)
    _add_common(sub)
    return root


def _flags(args: argparse.Namespace, names: Sequence[str] = EVENT_FLAGS) -> dict[str, Any]:
    return {name: getattr(args, name, None) for name in names}


def _events(args: argparse.Namespace, found: Resolution) -> EventSettings:
    """Event settings by precedence; the embedded S3's placeholder credentials when that S3 is the one used."""
    settings = found.events(_flags(args))
    for name, value in found.local_s3_credentials().items():
        os.environ.setdefault(name, value)
    return settings


def _serve(args: argparse.Namespace, found: Resolution) -> int:
    entered_at = time.time()
    from functions.serving.startup import hold_gc

    hold_gc()  # until the replica is ready: the imports below and the weights are long-lived
    # kserve parses sys.argv when imported; keep our flags away from its parser.
    sys.argv = sys.argv[:1]
    from functions import catalog
    from functions.serving import replica
    from functions.serving.settings import PredictorSettings

    if args.function not in catalog.FUNCTIONS:
        print(f"unknown function {args.function!r}; known: {', '.join(sorted(catalog.FUNCTIONS))}", file=sys.stderr)
        return 2
    events = _events(args, found)
    overrides = {k: v for k, v in vars(args).items() if k in PredictorSettings.model_fields and v is not None}
    if found.endpoints["s3_endpoint"].source is Source.CONTEXT:
        overrides.setdefault("s3_endpoint", events.s3_endpoint)  # artifacts from the same S3 as the payloads
    settings = PredictorSettings(**overrides)
    return replica.run(args.function, settings, events, consume_events=args.consume, entered_at=entered_at)


def _up(args: argparse.Namespace, found: Resolution) -> int:
    import asyncio
    import dataclasses

    from wakeserve.manifests import ManifestError, load_functions
    from wakeserve.settings import UpSettings
    from wakeserve.up import Overrides, Runtime

    settings = UpSettings(**{k: v for k, v in vars(args).items() if k in UpSettings.model_fields and v is not None})
    log_file = Path(args.log_file) if args.log_file else settings.state_dir / "up.log"
    logs.to_file(log_file, args.log_level)
    try:
        functions = load_functions(settings.manifests)
    except ManifestError as exc:
        print(f"wakeserve up: {exc}", file=sys.stderr)
        return 2
    if settings.functions:
        wanted = [f.strip() for f in settings.functions.split(",") if f.strip()]
        unknown = sorted(set(wanted) - set(functions))
        if unknown:
            print(f"wakeserve up: not in {settings.manifests}: {', '.join(unknown)}", file=sys.stderr)
            return 2
        functions = {name: functions[name] for name in wanted}
    fields = {f.name for f in dataclasses.fields(Overrides)}
    overrides = Overrides(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
    try:
        functions = {name: overrides.apply(m) for name, m in functions.items()}
    except ValueError as exc:
        print(f"wakeserve up: {exc}", file=sys.stderr)
        return 2
    runtime = Runtime(settings, found.events(_flags(args)), functions, quiet=args.quiet, log_file=log_file)
    return asyncio.run(runtime.run())


def _status(args: argparse.Namespace, found: Resolution) -> int:
    from wakeserve import status

    gateway = found.gateway(args.url)
    return status.command(str(gateway.value), found.token_for(str(gateway.value)), args.json)


def _rollout(args: argparse.Namespace, found: Resolution) -> int:
    gateway = found.gateway(args.url)
    args.url = gateway.value
    token = found.token_for(str(gateway.value))
    if token is not None:
        # The rollout command reads its tokens from the environment; this process's copy only.
        os.environ.setdefault("WAKESERVE_GATEWAY_TOKEN", token)
    admin = found.admin_token_for(str(gateway.value))
    if admin is not None:
        os.environ.setdefault("WAKESERVE_ADMIN_TOKEN", admin)
    return rollout_command.run(args)


def _async(args: argparse.Namespace, found: Resolution) -> int:
    from wakeserve import async_commands

    events = _events(args, found)
    if args.command == "post":
        token = None
        if args.ingress_url:
            found.endpoints["gateway"] = Endpoint("the ingress", args.ingress_url, Source.FLAG, "--ingress-url", "-")
            token = found.token_for(args.ingress_url)
        return async_commands.post(args, events, token)
    return int(getattr(async_commands, args.command)(args, events))


def _scaler(args: argparse.Namespace, found: Resolution) -> int:
    return scaler_command.run(args, found.events({"kafka_bootstrap": args.kafka_bootstrap}))


COMMANDS = {
    "serve": _serve,
    "up": _up,
    "status": _status,
    "rollout": _rollout,
    "scaler": _scaler,
    "dispatch": _async,
    "ingress": _async,
    "post": _async,
    "results": _async,
}


def resolve(args: argparse.Namespace) -> Resolution:
    """The state directory, and the running ``up`` found there (``up`` itself looks for none)."""
    if args.command == "up":
        return Resolution(state_dir=state_dir(args.state_dir))
    directory = state_dir(args.state_dir)
    return Resolution(state_dir=directory, context=context.find(directory))


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.quiet_third_party()
    found = Resolution(state_dir=Path(".wakeserve"))  # until resolved: resolving itself may fail
    try:
        found = resolve(args)
        return COMMANDS[args.command](args, found)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from wakeserve import failures

        line = failures.explain(exc, found)
        if line is None:
            raise
        print(f"wakeserve {args.command}: {line}", file=sys.stderr)
        return 1
