"""The ``wakeserve`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from events.settings import EventSettings


def _add_serve(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run one replica of a function (KServe v2 over REST and gRPC)")
    p.add_argument("function", help="function name: embedder, classifier or echo")
    p.add_argument("--host", help="bind address (default 127.0.0.1; 0.0.0.0 in containers)")
    p.add_argument("--http-port", type=int, help="REST port (default 8080)")
    p.add_argument("--grpc-port", type=int, help="gRPC port (default 8081; 0 disables)")
    p.add_argument("--model-uri", help="artifacts: local directory or s3://bucket/prefix")
    p.add_argument("--encoder-uri", help="encoder checkpoint for the classifier: local directory or s3://")
    p.add_argument("--s3-endpoint", help="S3 API endpoint URL (default: AWS)")
    p.add_argument("--max-batch-size", type=int, help="rows per batch; 1 turns batching off")
    p.add_argument("--max-batch-delay-ms", type=float, help="how long a batch may wait to fill")
    p.add_argument("--max-queue", type=int, help="requests that may wait; more are answered 503")
    p.add_argument("--torch-threads", type=int, help="torch intra-op threads")
    p.add_argument("--log-level", help="logging level (default INFO)")
    p.add_argument("--consume", action="store_true", help="also consume the function's request topic (KEDA path)")
    p.add_argument("--kafka-bootstrap", help="Kafka bootstrap servers (default 127.0.0.1:9092)")


def _serve(args: argparse.Namespace) -> int:
    # kserve parses sys.argv when imported; keep our flags away from its parser.
    sys.argv = sys.argv[:1]
    from functions import catalog, replica
    from functions.settings import PredictorSettings

    if args.function not in catalog.FUNCTIONS:
        print(f"unknown function {args.function!r}; known: {', '.join(sorted(catalog.FUNCTIONS))}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in vars(args).items() if k in PredictorSettings.model_fields and v is not None}
    settings = PredictorSettings(**overrides)
    events = _event_settings(args)
    return replica.run(args.function, settings, events, consume_events=args.consume)


def _event_settings(args: argparse.Namespace) -> EventSettings:
    from events.settings import EventSettings

    overrides = {k: v for k, v in vars(args).items() if k in EventSettings.model_fields and v is not None}
    return EventSettings(**overrides)


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
    p.add_argument("--functions", default="embedder,classifier,echo", help="comma-separated known functions")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wakeserve", description="Event-driven, scale-to-zero model inference.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_async(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    from wakeserve import async_commands

    return int(getattr(async_commands, args.command)(args, _event_settings(args)))
