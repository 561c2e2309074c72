"""The hot path of the v2 REST API: ``POST /v2/models/{name}/infer`` as a lean ASGI handler.

The wire format is exactly KServe's (:mod:`functions.serving.v2json`); only the machinery is lighter. Going through
FastAPI's route, pydantic validation of the request and response, and ``jsonable_encoder`` cost more CPU per
request than the model itself for small inputs, on the same core that runs the model. A plain JSON request to
one of our functions skips KServe's request and response objects too. Everything else (health, metadata,
repository, versioned routes) stays on KServe's FastAPI routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.dataplane import DataPlane

from core.errors import InvalidInputError, PayloadTooLargeError
from functions.serving.runtime import FunctionModel
from functions.serving.transport_errors import as_wakeserve_error
from functions.serving.v2json import JSON_HEADERS, encode_response, infer_request, load, parse_request, plain_request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INFER_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")


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

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLargeError(f"request body is over the {self.max_body_bytes}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _answer(self, model_name: str, body: bytes, headers: dict[str, str]) -> tuple[bytes, Any]:
        json_length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        if json_length is not None:
            try:
                length = int(json_length)
            except ValueError:
                raise InvalidInputError(f"{INFERENCE_CONTENT_LENGTH_HEADER} must be an integer") from None
            request = parse_request(body, length, model_name)
        else:
            doc = load(body)
            model = self.dataplane.model_registry.get_model(model_name)
            plain = plain_request(doc) if isinstance(model, FunctionModel) else None
            if plain is not None:
                content, _ = await model.infer_plain(plain)
                return content, JSON_HEADERS
            request = infer_request(doc, body, None, model_name)
        response, _ = await self.dataplane.infer(model_name, request, headers)
        return encode_response(response)

    async def _infer(self, model_name: str, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            content, response_headers = await self._answer(model_name, await self._read_body(scope, receive), headers)
            status = 200
        except ConnectionResetError:
            return
        except Exception as exc:  # noqa: BLE001 - translated once, below
            err = as_wakeserve_error(exc)
            status, content, response_headers = err.status, orjson.dumps(err.to_json()), list(JSON_HEADERS)
            if err.retryable:
                response_headers.append((b"retry-after", b"1"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*response_headers, (b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})
