"""The hot path of the v2 REST API: ``POST /v2/models/{name}/infer`` as a lean ASGI handler.

The wire format is KServe's (:mod:`functions.serving.v2json`, JSON and the binary tensor extension); only the
machinery is lighter. FastAPI's route, pydantic validation of the request and response, and KServe's request
and response objects cost more CPU per request than the model itself for small inputs, on the same core that
runs the model. Everything else (health, metadata, repository, versioned routes) stays on KServe's FastAPI
routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from kserve.protocol.dataplane import DataPlane

from core.errors import InvalidInputError, PayloadTooLargeError
from core.http_errors import send_error
from functions.serving.runtime import served_model
from functions.serving.transport_errors import as_wakeserve_error
from functions.serving.v2json import JSON_LENGTH_HEADER, encode_result, read_request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INFER_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
_JSON_LENGTH = JSON_LENGTH_HEADER.encode()


class ClientGoneError(Exception):
    """The client disconnected before its request body arrived; nobody is left to answer."""


async def read_body(receive: Receive, max_bytes: int) -> bytes:
    """The whole request body, refused (413) past ``max_bytes``; :class:`ClientGoneError` if the client left."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"request body is over the {max_bytes}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class V2InferRoute:
    """ASGI middleware: serve v2 infer calls directly, pass everything else to the FastAPI app."""

    def __init__(self, app: ASGIApp, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.app = app
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INFER_PATH.match(scope["path"])
            if match and match.group("version") is None:
                await self._infer(match.group("name"), scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, model_name: str, scope: Scope, receive: Receive) -> tuple[bytes, list[Any]]:
        body = await read_body(receive, self.max_body_bytes)
        json_length = None
        for key, value in scope["headers"]:
            if key.lower() == _JSON_LENGTH:
                try:
                    json_length = int(value)
                except ValueError:
                    raise InvalidInputError(f"{JSON_LENGTH_HEADER} must be an integer") from None
        request = read_request(body, json_length, model_name)
        result = await served_model(self.dataplane.model_registry, model_name).run(request)
        return encode_result(result, request)

    async def _infer(self, model_name: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            content, headers = await self._answer(model_name, scope, receive)
        except ClientGoneError:
            return
        except Exception as exc:  # noqa: BLE001 - translated once, below
            await send_error(send, as_wakeserve_error(exc))
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*headers, (b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})
