"""``POST /cloudevents`` in process: the reply event's attributes always make valid HTTP headers."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from events import cloudevent
from events.cloudevent import CloudEvent
from events.processor import EventProcessor, Outcome
from functions.serving.events_bridge import add_cloudevents_route


class EchoingProcessor:
    """Replies with an event that carries the request's id and subject, as a result event does."""

    async def process(self, event: CloudEvent) -> Outcome:
        attributes = {"specversion": "1.0", "id": event.id, "source": "/wakeserve", "type": "result"}
        attributes["subject"] = event.get("subject") or ""
        return Outcome(reply=CloudEvent(attributes, b"{}"), error=None)


def post_structured(event_id: str, subject: str) -> httpx.Response:
    app = FastAPI()

    async def processor() -> EventProcessor:
        return cast(EventProcessor, EchoingProcessor())

    add_cloudevents_route(app, processor)
    doc: dict[str, Any] = {"specversion": "1.0", "id": event_id, "source": "/t", "type": "t", "subject": subject}

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replica") as client:
            return await client.post("/cloudevents", json=doc, headers={"content-type": "application/cloudevents+json"})

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("event_id", "subject"),
    [("plain", "plain"), ("price-€", "naïve ✓"), ("line\nbreak", 'tab\there "quoted" 5%')],
    ids=["ascii", "non-ascii", "control-and-specials"],
)
def test_the_reply_carries_any_attribute_value_percent_encoded(event_id: str, subject: str) -> None:
    response = post_structured(event_id, subject)
    assert response.status_code == 200, response.text
    assert all(v.isascii() and v.isprintable() for v in response.headers.values())
    (reply,) = cloudevent.from_http(dict(response.headers), response.content)
    assert (reply.id, reply.attributes["subject"]) == (event_id, subject)
