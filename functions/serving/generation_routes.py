"""The generation routes of the inference port, as raw ASGI in front of the v2 app.

- OpenAI-compatible, under ``/openai/v1`` as KServe serves them: ``chat/completions``, ``completions``,
  ``models`` and ``models/{name}``; errors are OpenAI error objects.
- The v2 generate extension: ``/v2/models/{name}/generate`` and ``/generate_stream``; errors as every v2 route.

A client that disconnects cancels its request in the engine (not only the response), streaming or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from kserve.model_repository import ModelRepository
from pydantic import ValidationError

from core.errors import InvalidInputError, NotFoundError, NotReadyError, WakeserveError
from core.http_errors import send_error
from core.ids import new_id
from functions.generation.schema import GenerationRequest
from functions.serving import generate_v2, openai_render
from functions.serving.openai_schema import ChatRequest, CompletionRequest, parse
from functions.serving.rest import ClientGoneError, read_body
from functions.serving.runtime import FunctionModel, served_model
from functions.serving.sse import send_stream
from functions.serving.transport_errors import as_wakeserve_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPENAI = "/openai/v1/"
GENERATE = re.compile(r"^/v2/models/(?P<name>[^/]+)/generate(?P<stream>_stream)?$")
PRIORITY_HEADER = b"wakeserve-priority"


async def _read_json(receive: Receive, limit: int) -> object:
    try:
        return orjson.loads(await read_body(receive, limit))
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"the body is not JSON: {exc}") from None


async def _send_json(send: Send, status: int, document: object, headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps(document)
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class GenerationRoutes:
    """Serves the generation routes; passes everything else to ``app``."""

    def __init__(self, app: ASGIApp, registry: ModelRepository, max_body_bytes: int) -> None:
        self.app = app
        self.registry = registry
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path.startswith(OPENAI):
                await self._openai(path[len(OPENAI) :], method, scope, receive, send)
                return
            match = GENERATE.match(path)
            if match and method == "POST":
                await self._generate(match.group("name"), bool(match.group("stream")), scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _generative(self, name: str) -> FunctionModel:
        model = served_model(self.registry, name)
        if not model.generative:
            raise NotFoundError(f"model {name!r} does not generate text")
        return model

    # -- OpenAI ----------------------------------------------------------------------------------------------
    async def _openai(self, route: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if route == "models" and method == "GET":
                await _send_json(send, 200, self._model_list())
            elif route.startswith("models/") and method == "GET":
                await _send_json(send, 200, self._model_card(route[len("models/") :]))
            elif route in ("chat/completions", "completions") and method == "POST":
                await self._complete(route == "chat/completions", scope, receive, send)
            else:
                raise NotFoundError(f"no route {method} /openai/v1/{route}")
        except ClientGoneError:
            return
        except Exception as exc:  # noqa: BLE001 - translated once, here, into the OpenAI error shape
            error = as_wakeserve_error(exc)
            await _send_json(send, error.status, openai_render.error_of(error), error.headers)

    def _card(self, model: FunctionModel) -> dict[str, Any]:
        return {"id": model.name, "object": "model", "created": 0, "owned_by": "wakeserve"}

    def _model_list(self) -> dict[str, Any]:
        models = [m for m in self.registry.get_models().values() if isinstance(m, FunctionModel) and m.generative]
        return {"object": "list", "data": [self._card(m) for m in models if m.ready]}

    def _model_card(self, name: str) -> dict[str, Any]:
        model = self._generative(name)
        if not model.ready:
            raise NotReadyError(f"model {name} is not ready")
        return self._card(model)

    async def _complete(self, chat: bool, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_json(receive, self.max_body_bytes)
        parsed = parse(ChatRequest if chat else CompletionRequest, body)
        priority = dict(scope["headers"]).get(PRIORITY_HEADER)
        request = _internal(lambda: parsed.to_internal(new_id(), priority.decode() if priority else None))
        model = self._generative(parsed.model)
        async with model.generation(request) as stream:
            if parsed.stream:
                events = openai_render.sse_events(aiter(stream), chat, model.name, parsed.include_usage)
                await send_stream(send, receive, events, stream.cancel)
                return
            whole = await _or_disconnect(openai_render.collect(aiter(stream)), receive, stream.cancel)
            if whole.error is not None:
                raise _engine_error(whole.error.message, whole.error.retryable)
            await _send_json(send, 200, openai_render.whole_answer(whole, chat, request.id, model.name))

    # -- v2 generate -----------------------------------------------------------------------------------------
    async def _generate(self, name: str, streaming: bool, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_json(receive, self.max_body_bytes)
            model = self._generative(name)
            request = _internal(lambda: generate_v2.to_internal(body, name, new_id()))
            async with model.generation(request) as stream:
                version = model.version
                if streaming:
                    await send_stream(
                        send, receive, generate_v2.stream_events(aiter(stream), name, version), stream.cancel
                    )
                    return
                answer = await _or_disconnect(generate_v2.whole(aiter(stream), name, version), receive, stream.cancel)
                if not isinstance(answer, dict):
                    raise _engine_error(answer.message, answer.retryable)
                await _send_json(send, 200, answer)
        except ClientGoneError:
            return
        except Exception as exc:  # noqa: BLE001 - translated once, below
            await send_error(send, as_wakeserve_error(exc))


def _internal(build: Callable[[], GenerationRequest]) -> GenerationRequest:
    try:
        return build()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInputError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def _engine_error(message: str, retryable: bool) -> WakeserveError:
    error = WakeserveError(message)
    error.status, error.retryable = (503, True) if retryable else (500, False)
    return error


async def _or_disconnect(work: Awaitable[Any], receive: Receive, cancel: Callable[[], None]) -> Any:
    """``work``'s result; if the client leaves first, ``cancel`` and raise :class:`ClientGoneError`."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnect(receive))
    started = time.monotonic()
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        cancel()
        raise ClientGoneError(f"client left after {time.monotonic() - started:.3f}s")
    finally:
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
