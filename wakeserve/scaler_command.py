"""``wakeserve scaler``: the KEDA external scaler (gRPC) until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from wakeserve import logs

if TYPE_CHECKING:
    from events.settings import EventSettings


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("scaler", help="serve the KEDA external scaler (Kafka lag of the functions' request topics)")
    p.add_argument("--host", help="bind address (default 127.0.0.1; 0.0.0.0 in a cluster)")
    p.add_argument("--port", type=int, help="gRPC port (default 9090; 0 picks a free one)")
    p.add_argument("--kafka-bootstrap", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    p.add_argument("--stream-interval", type=float, help="seconds between StreamIsActive reads (default 0.25)")


def run(args: argparse.Namespace, events: EventSettings | None = None) -> int:
    """Serve until signalled. ``events``: the resolved Kafka settings; without them, ``--kafka-bootstrap`` and
    the environment."""
    from events.settings import EventSettings
    from scalers.external import ScalerSettings, start_scaler_server

    if events is None:
        events = EventSettings(**({"kafka_bootstrap": args.kafka_bootstrap} if args.kafka_bootstrap else {}))

    logs.to_stderr("INFO")
    flags = {"scaler_host": args.host, "scaler_port": args.port, "scaler_stream_interval_s": args.stream_interval}
    settings = ScalerSettings(**{k: v for k, v in flags.items() if v is not None})

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        scaler = await start_scaler_server(events, settings)
        logging.getLogger("wakeserve.scaler").info(
            "KEDA external scaler on %s:%d (Kafka %s)", settings.scaler_host, scaler.port, events.kafka_bootstrap
        )
        try:
            await stop.wait()
        finally:
            await scaler.stop(grace=1.0)

    asyncio.run(main())
    return 0
