"""The predictor's error mapping: KServe, FastAPI and Starlette exceptions become the error root, and the
FastAPI handlers answer with the one JSON error translation."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from kserve import errors as kserve_errors
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from core.errors import OverloadedError, PayloadTooLargeError, WakeserveError
from functions.serving.transport_errors import as_wakeserve_error, install_http_handlers


@pytest.mark.parametrize(
    ("exc", "status", "code", "says"),
    [
        (kserve_errors.ModelNotFound("translator"), 404, "unknown_model", "translator"),
        (kserve_errors.InvalidInput("shape mismatch"), 400, "invalid_input", "shape mismatch"),
        (kserve_errors.ModelNotReady("classifier"), 503, "not_ready", "classifier"),
        (kserve_errors.ServerNotReady(), 503, "not_ready", ""),
        (NotImplementedError("no model repository"), 501, "not_implemented", "no model repository"),
        (NotImplementedError(), 501, "not_implemented", "not implemented"),
        (HTTPException(404), 404, "not_found", "Not Found"),
        (PayloadTooLargeError("over 64 MiB"), 413, "payload_too_large", "over 64 MiB"),
        (ZeroDivisionError("division by zero"), 500, "model_error", "ZeroDivisionError: division by zero"),
    ],
    ids=[
        "model-not-found",
        "invalid-input",
        "model-not-ready",
        "server-not-ready",
        "not-implemented",
        "not-implemented-bare",
        "starlette-404",
        "ours",
        "unexpected",
    ],
)
def test_as_wakeserve_error(exc: BaseException, status: int, code: str, says: str) -> None:
    err = as_wakeserve_error(exc)
    assert (err.status, err.code) == (status, code) and says in err.message


class Body(BaseModel):
    n: int


def app() -> FastAPI:
    api = FastAPI()

    @api.get("/missing")
    async def missing() -> None:
        raise kserve_errors.ModelNotFound("translator")

    @api.get("/full")
    async def full() -> None:
        raise OverloadedError("the request queue is full")

    @api.get("/unimplemented")
    async def unimplemented() -> None:
        raise NotImplementedError("model repository extension")

    @api.post("/typed")
    async def typed(body: Body) -> int:
        return body.n

    install_http_handlers(api)
    return api


@pytest.mark.parametrize(
    ("method", "path", "json", "status", "code", "says"),
    [
        ("GET", "/missing", None, 404, "unknown_model", "translator"),
        ("GET", "/full", None, 503, "overloaded", "the request queue is full"),
        ("GET", "/unimplemented", None, 501, "not_implemented", "model repository extension"),
        ("POST", "/typed", {"n": "many"}, 400, "invalid_input", "n: Input should be a valid integer"),
        ("GET", "/nowhere", None, 404, "not_found", "Not Found"),
        ("PUT", "/full", None, 405, "method_not_allowed", "Method Not Allowed"),
    ],
    ids=["kserve-error", "ours", "not-implemented", "validation", "no-route", "wrong-method"],
)
def test_the_predictor_answers_through_the_one_translation(
    method: str, path: str, json: object, status: int, code: str, says: str
) -> None:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://replica") as client:
            return await client.request(method, path, json=json)

    response = asyncio.run(go())
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["code"], body["retryable"]) == (code, status == 503) and says in body["error"]
    assert ("retry-after" in response.headers) == (status == 503)


def test_validation_errors_name_the_field() -> None:
    exc = RequestValidationError([{"loc": ("body", "inputs", 0, "shape"), "msg": "Field required"}])
    err = as_wakeserve_error(exc)
    assert isinstance(err, WakeserveError) and err.message.endswith("inputs.0.shape: Field required")
