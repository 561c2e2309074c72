"""The gateway on one port: ``/v2/...`` for every function (through the activator), the OpenAI routes of the
generative ones, and ``POST /events``.

Answers of replicas are relayed as they arrive (:mod:`wakeserve.gateway_relay`), so token streams reach the
client token by token and a client that leaves stops its generation.

With a gateway token configured, every route except the gateway's own health checks needs
``Authorization: Bearer <token>``; without it the answer is 401 and nothing reaches a replica or the broker.
The client's credential is never forwarded; a replica gets the internal inference token instead, which is
what its inference port requires, so it cannot be called around the gateway. Request bodies are bounded
before they are read (:class:`core.body_limit.BodyLimit`).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from core.body_limit import BodyLimit
from core.errors import (
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    UnauthorizedError,
    UnknownModelError,
)
from core.http_errors import send_error
from core.starlette_errors import exception_handlers
from events.ingress import Ingress
from functions import catalog
from wakeserve.activator import Activator
from wakeserve.gateway_dialect import Dialect
from wakeserve.gateway_relay import Relay, Upstream, open_upstream
from wakeserve.rollout import RolloutController, RolloutRequest

# Hop-by-hop and per-connection headers are not forwarded; neither is the gateway's own credential.
_DROP_REQUEST = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "authorization", "te"}
OPEN_PATHS = frozenset({"/healthz", "/v2/health/live", "/v2/health/ready"})
MAX_ROLLOUT_BODY = 64 * 1024


def generative_functions(names: Iterable[str]) -> frozenset[str]:
    """The functions among ``names`` that generate text, asked of the catalog (nothing is loaded)."""
    found = set()
    for name in names:
        try:
            if catalog.is_generative(name):
                found.add(name)
        except (ValueError, ImportError):
            continue  # not in this build's catalog: served by v2 only
    return frozenset(found)


class BearerAuth:
    """ASGI middleware: 401 unless the request carries the gateway token or the admin token (constant time)."""

    def __init__(self, app: ASGIApp, token: str, admin_token: str | None = None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.admin = f"Bearer {admin_token}".encode() if admin_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(supplied, self.expected) or (
            self.admin is not None and hmac.compare_digest(supplied, self.admin)
        ):
            await self.app(scope, receive, send)
            return
        await send_error(send, UnauthorizedError("missing or wrong bearer token"))


class Gateway:
    """Forwards v2 and OpenAI calls to replicas chosen by the activator and hosts the event ingress.

    Routes raise :class:`core.errors.WakeserveError`; the app's exception handlers answer it.
    """

    def __init__(
        self,
        activator: Activator,
        ingress: Ingress | None,
        client: httpx.AsyncClient,
        status: Callable[[], dict[str, Any]],
        *,
        max_body_bytes: int = 64 * 1024 * 1024,
        attempts: int = 3,
        rollouts: dict[str, RolloutController] | None = None,
        admin_token: str | None = None,
        inference_token: str | None = None,
        generative: frozenset[str] = frozenset(),
        keepalive_s: float = 5.0,
    ) -> None:
        self.rollouts = rollouts or {}
        self.upstream_auth = {"authorization": f"Bearer {inference_token}"} if inference_token else {}
        # Starting, promoting or aborting a rollout changes what replicas serve: it needs the admin token
        # whatever the gateway token, and with no admin token configured it is refused.
        self.admin_token = admin_token
        self.activator = activator
        self.ingress = ingress
        self.client = client
        self.status = status
        self.max_body_bytes = max_body_bytes
        self.attempts = attempts
        self.generative = generative  # served on the OpenAI routes too
        self.keepalive_s = keepalive_s
        self.started = int(time.time())

    def body_limit(self, path: str) -> int:
        """The largest body a request to ``path`` may carry (see :class:`core.body_limit.BodyLimit`)."""
        if path == "/events" and self.ingress is not None:
            return self.ingress.max_body
        if path.startswith("/wakeserve/"):
            return MAX_ROLLOUT_BODY
        return self.max_body_bytes

    async def model(self, request: Request) -> Response:
        body = await request.body()
        stream = request.url.path.endswith("/generate_stream")
        return self._relay(request, request.path_params["name"], body, Dialect.V2, stream=stream)

    # -- OpenAI routes ---------------------------------------------------------------------------------------
    async def openai_generate(self, request: Request) -> Response:
        """Chat and text completions: the function is the body's ``model``."""
        body = await request.body()
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return Dialect.OPENAI.response(InvalidInputError(f"body is not JSON: {exc}"))
        name = doc.get("model") if isinstance(doc, dict) else None
        if not isinstance(name, str):
            return Dialect.OPENAI.response(InvalidInputError('the body needs "model", the name of a function'))
        if name not in self.openai_functions:
            return Dialect.OPENAI.response(self._unknown(name))
        return self._relay(request, name, body, Dialect.OPENAI, stream=doc.get("stream") is True)

    async def openai_model(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.openai_functions:
            return Dialect.OPENAI.response(self._unknown(name))
        return self._relay(request, name, b"", Dialect.OPENAI, stream=False)

    @property
    def openai_functions(self) -> frozenset[str]:
        """The generative functions this gateway serves."""
        return self.generative & self.activator.pools.keys()

    async def openai_models(self, _: Request) -> Response:
        """Every generative function, whether awake or not: listing them wakes nothing."""
        data = [
            {"id": name, "object": "model", "created": self.started, "owned_by": "wakeserve"}
            for name in sorted(self.openai_functions)
        ]
        return JSONResponse({"object": "list", "data": data})

    def _unknown(self, name: str) -> UnknownModelError:
        known = ", ".join(sorted(self.openai_functions)) or "none"
        return UnknownModelError(f"model {name!r} is not a generative function served here; known: {known}")

    # -- forwarding ------------------------------------------------------------------------------------------
    def _relay(self, request: Request, function: str, body: bytes, dialect: Dialect, *, stream: bool) -> Relay:
        """Relay the call to a replica; a stream asked of a function with no ready replica starts at once."""
        headers = {k: v for k, v in request.headers.items() if k not in _DROP_REQUEST}
        headers.update(self.upstream_auth)
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")

        async def opener() -> Upstream:
            return await open_upstream(
                self.activator, self.client, function, request.method, path, body, headers, self.attempts
            )

        pool = self.activator.pools.get(function)
        waking = stream and pool is not None and not pool.ready()
        return Relay(opener, dialect, keepalive_s=self.keepalive_s if waking else None)

    async def events(self, request: Request) -> Response:
        if self.ingress is None:
            raise NotFoundError("this gateway has no event ingress")
        return await self.ingress.post(request)

    async def health(self, _: Request) -> JSONResponse:
        return JSONResponse({"live": True, "ready": True})

    async def status_route(self, _: Request) -> JSONResponse:
        return JSONResponse(self.status())

    # -- model lifecycle -------------------------------------------------------------------------------------
    def _require_admin(self, request: Request) -> None:
        supplied = request.headers.get("authorization", "").encode()
        if self.admin_token is None:
            raise ForbiddenError("rollouts are not enabled on this gateway (it has no admin token)")
        if not hmac.compare_digest(supplied, f"Bearer {self.admin_token}".encode()):
            raise UnauthorizedError("rollouts need the admin token (`wakeserve up` keeps it in its context file)")

    def _controller(self, request: Request) -> RolloutController:
        name = request.path_params["name"]
        controller = self.rollouts.get(name)
        if controller is None:
            raise UnknownModelError(f"function {name!r} is not served here")
        return controller

    async def rollout(self, request: Request) -> Response:
        """GET: the rollout state and per-version metrics; POST: start a rollout (202)."""
        controller = self._controller(request)
        if request.method == "GET":
            return JSONResponse(controller.describe())
        self._require_admin(request)
        body = await request.body()
        try:
            doc = json.loads(body or b"{}")
        except ValueError as exc:
            raise InvalidInputError(f"body is not JSON: {exc}") from exc
        controller.start(RolloutRequest.from_json(doc))
        return JSONResponse(controller.describe(), status_code=202)

    async def rollout_action(self, request: Request) -> Response:
        controller = self._controller(request)
        self._require_admin(request)
        action = request.path_params["action"]
        if action not in ("promote", "abort"):
            raise NotFoundError(f"unknown rollout action {action!r}; use promote or abort")
        if action == "promote":
            await controller.promote()
        else:
            await controller.abort()
        return JSONResponse(controller.describe())

    async def slots(self, request: Request) -> Response:
        """Both slots of every ready replica, read from the replicas' control API."""
        controller = self._controller(request)
        self._require_admin(request)
        function = controller.pool.function
        replicas = []
        for replica in controller.pool.ready():
            try:
                answer = await self.client.get(
                    f"{replica.admin_url}/wakeserve/models/{function}/slots", headers=controller.headers, timeout=5
                )
                slots: Any = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                slots = {"error": f"{type(exc).__name__}: {exc}"}
            replicas.append({"index": replica.index, "slots": slots})
        return JSONResponse({"function": function, "replicas": replicas})

    def app(self, token: str | None = None) -> ASGIApp:
        methods = ["GET", "POST"]
        app = Starlette(
            routes=[
                Route("/v2/health/live", self.health, methods=["GET"]),
                Route("/v2/health/ready", self.health, methods=["GET"]),
                Route("/healthz", self.health, methods=["GET"]),
                Route("/v2/models/{name}", self.model, methods=methods),
                Route("/v2/models/{name}/{rest:path}", self.model, methods=methods),
                Route("/openai/v1/chat/completions", self.openai_generate, methods=["POST"]),
                Route("/openai/v1/completions", self.openai_generate, methods=["POST"]),
                Route("/openai/v1/models", self.openai_models, methods=["GET"]),
                Route("/openai/v1/models/{name}", self.openai_model, methods=["GET"]),
                Route("/events", self.events, methods=["POST"]),
                Route("/wakeserve/status", self.status_route, methods=["GET"]),
                Route("/wakeserve/functions/{name}/rollout", self.rollout, methods=methods),
                Route("/wakeserve/functions/{name}/rollout/{action:str}", self.rollout_action, methods=["POST"]),
                Route("/wakeserve/functions/{name}/slots", self.slots, methods=["GET"]),
            ],
            exception_handlers=dict(exception_handlers()),
        )
        bounded = BodyLimit(app, self.max_body_bytes, self.body_limit)
        return BearerAuth(bounded, token, self.admin_token) if token else bounded
