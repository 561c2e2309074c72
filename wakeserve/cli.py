"""The ``wakeserve`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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
    return replica.run(args.function, settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wakeserve", description="Event-driven, scale-to-zero model inference.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    parser.error(f"unknown command {args.command}")
    return 2
