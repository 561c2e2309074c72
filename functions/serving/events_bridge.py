"""The predictor's CloudEvents route: a Knative Trigger delivers request events over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response

from core.errors import InvalidEventError, WakeserveError
from core.http_errors import error_response
from events import cloudevent

if TYPE_CHECKING:
    from events.processor import EventProcessor


def add_cloudevents_route(app: FastAPI, processor: Callable[[], Awaitable[EventProcessor]]) -> None:
    """``POST /cloudevents``: one request event in (binary or structured), the reply event out in binary mode.

    A Knative Trigger delivers here; the reply (result or error event, always 200) is routed on by the broker.
    ``processor`` gives the event processor, which may still be being built.
    """

    async def handle(request: Request) -> Response:
        body = await request.body()
        try:
            events = cloudevent.from_http(dict(request.headers), body)
            if len(events) != 1:
                raise InvalidEventError("send one event per request to this route, not a batch")
        except WakeserveError as exc:
            return error_response(exc)
        outcome = await (await processor()).process(events[0])
        headers, content = cloudevent.to_http(outcome.reply)
        return Response(content=content, status_code=200, headers=headers)

    app.add_api_route("/cloudevents", handle, methods=["POST"])
