"""HTTP ingress for CloudEvents: ``POST /events`` validates each event and writes it to its function's topic.

Binary, structured and batched modes are accepted. A batch is all-or-nothing: every event is validated before
any is written, including that its ``dataref`` points into an allowed payload bucket (the allowlist the
replicas fetch by). The answer is 202 with the accepted ids only after the broker acknowledged every write
(acks=all). The body is bounded by :class:`core.body_limit.BodyLimit` before it is read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import uvicorn
from kafka import KafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.body_limit import BodyLimit
from core.errors import InvalidEventError, PayloadTooLargeError, TransientError, WakeserveError
from core.http_errors import error_response
from core.listener import server_config
from core.starlette_errors import exception_handlers
from events import cloudevent, contract
from events.kafka import send
from events.settings import EventSettings

log = logging.getLogger(__name__)


class Ingress:
    """Validates events against the contract and produces them to ``<prefix>.<model>.requests``."""

    def __init__(
        self,
        producer: KafkaProducer,
        settings: EventSettings,
        functions: frozenset[str],
        on_accepted: Callable[[Sequence[contract.InferenceRequest]], None] | None = None,
    ) -> None:
        self.producer = producer
        self.on_accepted = on_accepted
        self.settings = settings
        self.functions = functions
        self.max_body = settings.max_inline_event_bytes * 16

    def validate(self, events: list[cloudevent.CloudEvent]) -> list[contract.InferenceRequest]:
        accepted = []
        for index, event in enumerate(events):
            where = f"event {index} (id {event.get('id')!r})" if len(events) > 1 else "event"
            try:
                request = contract.parse_request(event, self.functions)
                size = len(event.data or b"")
                if size > self.settings.max_inline_event_bytes:
                    raise PayloadTooLargeError(
                        f"inline data is {size} bytes, over the {self.settings.max_inline_event_bytes}-byte limit: "
                        "upload the payload to S3 and send its s3:// URI as the 'dataref' attribute instead"
                    )
                if request.dataref is not None and request.dataref.bucket not in self.settings.allowed_buckets:
                    allowed = ", ".join(sorted(self.settings.allowed_buckets))
                    raise InvalidEventError(
                        f"dataref bucket {request.dataref.bucket!r} is not allowed; allowed: {allowed}"
                    )
            except WakeserveError as exc:
                exc.message = f"{where}: {exc.message}"
                raise
            accepted.append(request)
        return accepted

    async def post(self, request: Request) -> Response:
        try:
            body = await request.body()
            requests = self.validate(cloudevent.from_http(dict(request.headers), body))
            try:
                await asyncio.gather(
                    *(
                        send(
                            self.producer,
                            self.settings.topics.requests(r.model),
                            r.event,
                            self.settings.ingress_ack_timeout_s,
                        )
                        for r in requests
                    )
                )
            except Exception as exc:
                log.warning("broker did not acknowledge: %s", exc)
                raise TransientError(f"the broker did not acknowledge the events: {type(exc).__name__}") from exc
        except WakeserveError as exc:
            return error_response(exc)
        if self.on_accepted is not None:
            self.on_accepted(requests)
        return JSONResponse({"accepted": [r.id for r in requests]}, status_code=202)


def build_app(ingress: Ingress) -> BodyLimit:
    """The standalone ingress: ``POST /events`` and ``GET /healthz``, bodies bounded to ``ingress.max_body``."""

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"live": True})

    app = Starlette(
        routes=[Route("/events", ingress.post, methods=["POST"]), Route("/healthz", health, methods=["GET"])],
        exception_handlers=dict(exception_handlers()),
    )
    return BodyLimit(app, ingress.max_body)


def server(ingress: Ingress, host: str, port: int) -> uvicorn.Server:
    """The standalone ingress's server, with the listener bounds of its settings (``wakeserve ingress``)."""
    limits = ingress.settings.listener_limits(ingress.max_body)
    return uvicorn.Server(
        server_config(build_app(ingress), limits, host=host, port=port, log_config=None, access_log=False)
    )
