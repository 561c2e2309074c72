"""The lean v2 infer route (``rest.V2InferRoute``) on an in-process ASGI app: request bodies to answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import numpy as np
import orjson
import pytest
from kserve.model_repository import ModelRepository
from prometheus_client import CollectorRegistry
from starlette.responses import PlainTextResponse

from functions.echo.function import Echo
from functions.serving.datatypes import numpy_to_raw
from functions.serving.metrics import PredictorMetrics
from functions.serving.rest import V2InferRoute
from functions.serving.runtime import FunctionModel
from functions.serving.server import ReplicaDataPlane

MAX_BODY = 4096
X = {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.5]}
RAW_X = np.array([[1.5, 2.5]], np.float32).tobytes()
BINARY_HEADER = orjson.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}]}
)


def in_process(scenario: Callable[[httpx.AsyncClient, FunctionModel], Awaitable[None]], load: bool = True) -> None:
    async def run() -> None:
        model = FunctionModel(
            Echo(), PredictorMetrics(CollectorRegistry()), max_batch_size=4, max_delay_ms=0, max_queue=4
        )
        if load:
            await model.load_async(lambda: None)
        repository = ModelRepository()
        repository.update(model)
        route = V2InferRoute(PlainTextResponse("fallback"), ReplicaDataPlane(model_registry=repository), MAX_BODY)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=route), base_url="http://r") as client:
                await scenario(client, model)
        finally:
            await model.close()

    asyncio.run(run())


ERRORS = [
    ("not JSON", "echo", b'{"inputs": [', {}, 400, "not JSON"),
    ("not an object", "echo", b"[1]", {}, 400, "expected a JSON object"),
    ("no inputs", "echo", b"{}", {}, 400, "request is missing 'inputs'"),
    (
        "wrong datatype",
        "echo",
        orjson.dumps({"inputs": [{**X, "datatype": "INT32", "data": [1, 2]}]}),
        {},
        400,
        "input 'x' has datatype INT32, expected FP32",
    ),
    ("values not numbers", "echo", orjson.dumps({"inputs": [{**X, "data": ["a", 1]}]}), {}, 400, "must be numbers"),
    ("unknown model", "nope", orjson.dumps({"inputs": [X]}), {}, 404, "Model with name nope does not exist"),
    ("body too large", "echo", b" " * (MAX_BODY + 1), {}, 413, f"over the {MAX_BODY}-byte limit"),
    (
        "binary header not a number",
        "echo",
        BINARY_HEADER + RAW_X,
        {"inference-header-content-length": "ten"},
        400,
        "inference-header-content-length must be an integer",
    ),
    (
        "binary header past the body",
        "echo",
        BINARY_HEADER + RAW_X,
        {"inference-header-content-length": "9999"},
        400,
        "inference-header-content-length is 9999",
    ),
    (
        "binary tensor cut short",
        "echo",
        BINARY_HEADER + RAW_X[:4],
        {"inference-header-content-length": str(len(BINARY_HEADER))},
        400,
        "binary_data_size 8 runs past the end of the body",
    ),
    (
        "binary tensor without the header",
        "echo",
        BINARY_HEADER + RAW_X,
        {},
        400,
        "not JSON",
    ),
]


@pytest.mark.parametrize(("case", "model", "body", "headers", "status", "reason"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_requests_are_answered_with_status_and_reason(case, model, body, headers, status, reason):
    async def scenario(client: httpx.AsyncClient, _: FunctionModel) -> None:
        r = await client.post(f"/v2/models/{model}/infer", content=body, headers=headers)
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/json"
        assert reason in r.json()["error"]
        assert "retry-after" not in r.headers
        ok = await client.post("/v2/models/echo/infer", json={"inputs": [X]})  # unharmed
        assert ok.json()["outputs"][0]["data"] == [1.5, 2.5]

    in_process(scenario)


def test_a_loading_model_answers_503_with_retry_after():
    async def scenario(client: httpx.AsyncClient, _: FunctionModel) -> None:
        r = await client.post("/v2/models/echo/infer", json={"inputs": [X]})
        assert r.status_code == 503
        assert r.json() == {"error": "model echo is still loading", "code": "not_ready", "retryable": True}
        assert r.headers["retry-after"] == "1"

    in_process(scenario, load=False)


def test_json_in_json_out_with_the_request_id():
    async def scenario(client: httpx.AsyncClient, _: FunctionModel) -> None:
        r = await client.post("/v2/models/echo/infer", json={"id": "r-7", "inputs": [X]})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.json() == {
            "model_name": "echo",
            "model_version": "1",
            "id": "r-7",
            "parameters": None,
            "outputs": [{"name": "y", "shape": [1, 2], "datatype": "FP32", "parameters": None, "data": [1.5, 2.5]}],
        }
        assert int(r.headers["content-length"]) == len(r.content)

    in_process(scenario)


@pytest.mark.parametrize(
    ("parameters", "outputs"),
    [({"binary_data_output": True}, None), (None, [{"name": "y", "parameters": {"binary_data": True}}])],
)
def test_binary_in_binary_out(parameters, outputs):
    header = orjson.loads(BINARY_HEADER)
    header.update({"parameters": parameters, "outputs": outputs})
    head = orjson.dumps(header)

    async def scenario(client: httpx.AsyncClient, _: FunctionModel) -> None:
        r = await client.post(
            "/v2/models/echo/infer",
            content=head + RAW_X,
            headers={"inference-header-content-length": str(len(head))},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/octet-stream"
        length = int(r.headers["inference-header-content-length"])
        answer = orjson.loads(r.content[:length])
        assert answer["outputs"][0]["parameters"] == {"binary_data_size": 8}
        assert "data" not in answer["outputs"][0]
        assert r.content[length:] == numpy_to_raw(np.array([[1.5, 2.5]], np.float32), "FP32")

    in_process(scenario)


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v2/models/echo/infer"), ("POST", "/v2/models/echo/versions/1/infer"), ("POST", "/")]
)
def test_everything_else_goes_to_the_wrapped_app(method, path):
    async def scenario(client: httpx.AsyncClient, _: FunctionModel) -> None:
        r = await client.request(method, path, json={"inputs": [X]})
        assert (r.status_code, r.text) == (200, "fallback")

    in_process(scenario)
