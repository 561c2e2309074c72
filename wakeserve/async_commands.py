"""``wakeserve dispatch | ingress | post | results``: the asynchronous path's commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

import orjson

from events import client
from events.settings import EventSettings
from wakeserve import logs


def _logging() -> None:
    logs.to_stderr("INFO")


async def _until_signalled(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def dispatch(args: argparse.Namespace, settings: EventSettings) -> int:
    """Consumer group ``<prefix>-F`` calling a remote v2 endpoint (for a Knative-served predictor)."""
    from events.invokers import RemoteInvoker
    from events.worker import build_processor, consume

    _logging()

    async def main() -> None:
        stop = asyncio.Event()
        await _until_signalled(stop)
        invoker = RemoteInvoker(args.target_url, max_connections=settings.max_in_flight)
        try:
            await consume(args.function, build_processor(frozenset([args.function]), invoker, settings), settings, stop)
        finally:
            await invoker.close()

    asyncio.run(main())
    return 0


def ingress(args: argparse.Namespace, settings: EventSettings) -> int:
    from events.ingress import Ingress, server
    from events.kafka import make_producer

    _logging()
    producer = make_producer(settings)
    functions = frozenset(f.strip() for f in args.functions.split(",") if f.strip())
    try:
        server(Ingress(producer, settings, functions), args.host, args.port).run()
    finally:
        producer.close(timeout=10)
    return 0


def post(args: argparse.Namespace, settings: EventSettings, token: str | None = None) -> int:
    """Upload the payload (claim check), post the event to Kafka or to ``--ingress-url``, and wait for its result."""
    payload = Path(args.file).read_bytes() if args.file else client.text_request(args.text)
    event = client.build_event(args.function, data=payload if args.inline else None)
    if not args.inline:
        event.attributes["dataref"] = client.upload_payload(settings, payload, event.id)
        event.attributes.pop("datacontenttype", None)
    results = client.results_consumer(settings, from_beginning=False) if args.wait else None
    try:
        if args.ingress_url:
            client.post_http(args.ingress_url, event, token)
        else:
            client.post_kafka(settings, event)
        print(json.dumps({"posted": event.id, "dataref": event.get("dataref")}), flush=True)
        if results is None:
            return 0
        for result in client.follow(results, args.timeout):
            if result.get("requestid") == event.id:
                print(json.dumps(client.describe(settings, result), indent=2))
                return 0 if result.type == "dev.wakeserve.inference.result" else 1
        print(f"no result for {event.id} within {args.timeout:.0f}s", file=sys.stderr)
        return 1
    finally:
        if results is not None:
            results.close()


def results(args: argparse.Namespace, settings: EventSettings) -> int:
    consumer = client.results_consumer(settings, from_beginning=args.from_beginning)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            for event in client.follow(consumer, None if args.follow else 5.0):
                sys.stdout.write(orjson.dumps(client.describe(settings, event)).decode() + "\n")
                sys.stdout.flush()
    finally:
        consumer.close()
    return 0
