"""The predictor's error handlers: HTTP through :mod:`core.http_errors`, gRPC through a status interceptor.

KServe's data plane raises its own exception types (unknown model, not ready, invalid input), FastAPI its
validation errors and Starlette its route refusals; :func:`as_wakeserve_error` folds them all into
:class:`core.errors.WakeserveError` so both transports speak the same codes.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from grpc_interceptor import AsyncExceptionToStatusInterceptor
from kserve import errors as kserve_errors
from starlette.exceptions import HTTPException
from starlette.responses import Response

from core.errors import (
    InvalidInputError,
    ModelError,
    NotImplementedFeatureError,
    NotReadyError,
    UnknownModelError,
    WakeserveError,
)
from core.http_errors import error_response
from core.starlette_errors import from_http_exception

log = logging.getLogger(__name__)

_GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    return "request body is not a valid v2 inference request: " + "; ".join(problems)


def as_wakeserve_error(exc: BaseException) -> WakeserveError:
    """Map any exception reaching a transport onto the error root."""
    if isinstance(exc, WakeserveError):
        return exc
    if isinstance(exc, RequestValidationError):
        return InvalidInputError(_validation_message(exc))
    if isinstance(exc, kserve_errors.ModelNotFound):
        return UnknownModelError(str(exc))
    if isinstance(exc, kserve_errors.InvalidInput):
        return InvalidInputError(str(exc))
    if isinstance(exc, kserve_errors.ModelNotReady | kserve_errors.ServerNotReady):
        return NotReadyError(str(exc))
    if isinstance(exc, NotImplementedError):
        return NotImplementedFeatureError(str(exc) or "not implemented")
    if isinstance(exc, HTTPException):
        return from_http_exception(exc)
    log.exception("unexpected error", exc_info=exc)
    return ModelError(f"{type(exc).__name__}: {exc}")


async def _http_handler(_: Request, exc: Exception) -> Response:
    return error_response(as_wakeserve_error(exc))


def install_http_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _http_handler)
    for exc_type in (
        WakeserveError,
        RequestValidationError,
        kserve_errors.ModelNotFound,
        kserve_errors.InvalidInput,
        kserve_errors.ModelNotReady,
        kserve_errors.ServerNotReady,
        NotImplementedError,
        HTTPException,
    ):
        app.add_exception_handler(exc_type, _http_handler)


class GrpcErrorInterceptor(AsyncExceptionToStatusInterceptor):
    """gRPC counterpart of :func:`install_http_handlers`."""

    async def handle_exception(
        self, ex: Exception, request_or_iterator: Any, context: grpc.ServicerContext, method_name: str
    ) -> NoReturn:
        if isinstance(ex, grpc.aio.AbortError):
            raise ex  # the handler already set the status (context.abort); nothing to translate
        err = as_wakeserve_error(ex)
        await context.abort(_GRPC_CODES.get(err.status, grpc.StatusCode.INTERNAL), err.message)
        raise AssertionError("context.abort raises")
