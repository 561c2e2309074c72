"""The replica's admin listener: everything that changes or reveals the replica, away from the inference port.

The inference port serves inference, health, metadata, CloudEvents and /metrics, to whoever can reach it.
The control API (hot swap), the startup timeline (it shows the PID), the OpenAPI document and, only when
enabled, KServe's repository load/unload extension live here instead: on their own address (127.0.0.1 by
default, so in a pod only a port-forward or exec reaches them) and, when an admin token is configured, only
for requests that carry it as ``Authorization: Bearer <token>``. Every control action is logged here, at
INFO, with the caller's address, the action and the version and digest it concerned.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from core.bearer import RequireBearer
from core.bearer import bearer_matches as bearer_matches  # the gRPC servicer's admin check
from core.body_limit import ASGIApp
from core.errors import NotImplementedFeatureError
from functions.serving.startup import StartupTimeline
from functions.serving.transport_errors import install_http_handlers

log = logging.getLogger(__name__)
MAX_STARTUP_WAIT_S = 600.0
REPOSITORY_OFF = "the model repository extension is off (WAKESERVE_ENABLE_REPOSITORY_API)"


def caller(request: Request) -> str:
    client = request.client
    return "unknown" if client is None else f"{client.host}:{client.port}"


def audit(request: Request, action: str, model: str, about: str) -> None:
    """One line per control action: who asked, what, on which model, about which version and digest."""
    log.info("admin %s of %s by %s: %s", action, model, caller(request), about)


def add_repository_routes(app: FastAPI, extension: ModelRepositoryExtension | None) -> None:
    """KServe's repository load/unload, audited; ``extension`` None answers 501 (the extension is off)."""

    async def load(model_name: str, request: Request) -> dict[str, Any]:
        if extension is None:
            raise NotImplementedFeatureError(REPOSITORY_OFF)
        audit(request, "repository load", model_name, "")
        return dict(await extension.load(model_name))

    async def unload(model_name: str, request: Request) -> dict[str, Any]:
        if extension is None:
            raise NotImplementedFeatureError(REPOSITORY_OFF)
        audit(request, "repository unload", model_name, "")
        return dict(await extension.unload(model_name))

    app.add_api_route("/v2/repository/models/{model_name}/load", load, methods=["POST"])
    app.add_api_route("/v2/repository/models/{model_name}/unload", unload, methods=["POST"])


def build_admin_app(startup: StartupTimeline, repository: ModelRepositoryExtension | None) -> FastAPI:
    """The admin application without its token check (see :func:`guarded`); control routes are added later."""
    app = FastAPI(title="wakeserve predictor admin", default_response_class=ORJSONResponse, redoc_url=None)

    async def startup_phases(wait: float = 0.0) -> dict[str, Any]:
        # A starting replica's caller can wait here with one request instead of polling readiness, which
        # takes the GIL from the loading thread on every poll.
        if wait > 0:
            await startup.wait_ready(min(wait, MAX_STARTUP_WAIT_S))
        return startup.report()

    app.add_api_route("/wakeserve/startup", startup_phases, methods=["GET"])
    add_repository_routes(app, repository)
    install_http_handlers(app)
    return app


def guarded(app: ASGIApp, token: str | None) -> ASGIApp:
    """``app`` behind the token check when a token is configured."""
    return app if token is None else RequireBearer(app, token, "admin API")
