"""Exception handlers that make a Starlette listener answer every failure through :mod:`core.http_errors`.

Routes raise :class:`WakeserveError`; Starlette's own refusals (no such route, method not allowed) and
unexpected exceptions are folded into the error root first, so no listener answers with a plain-text or
``{"detail": ...}`` body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from core.errors import NotFoundError, NotImplementedFeatureError, WakeserveError
from core.http_errors import error_response

log = logging.getLogger(__name__)

Handler = Callable[[Request, Exception], Awaitable[Response]]


def from_http_exception(exc: HTTPException) -> WakeserveError:
    """The error root for a Starlette ``HTTPException``, keeping its status and its headers (e.g. Allow)."""
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    err: WakeserveError
    if exc.status_code == 404:
        err = NotFoundError(detail)
    elif exc.status_code == 501:
        err = NotImplementedFeatureError(detail)
    else:
        err = WakeserveError(detail)
        err.status = exc.status_code
        err.code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        err.retryable = exc.status_code == 503
    if exc.headers:
        err.headers = {**err.headers, **exc.headers}
    return err


async def _wakeserve(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, WakeserveError)
    return error_response(exc)


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(from_http_exception(exc))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette logs and re-raises after this answer; the body names the type only, never internals.
    return error_response(WakeserveError(f"internal error handling {request.url.path}: {type(exc).__name__}"))


def exception_handlers() -> Mapping[type[Exception], Handler]:
    """Handlers for ``Starlette(exception_handlers=...)``."""
    return {WakeserveError: _wakeserve, HTTPException: _http, Exception: _unexpected}
