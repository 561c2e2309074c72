"""The in-process invoker: an event's v2 body straight to a loaded model, at the event's priority."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from core.errors import InvalidInputError, NotReadyError, UnknownModelError
from functions.echo.function import Echo
from functions.serving.batching import BACKGROUND, EVENT, SYNC
from functions.serving.event_invoker import InProcessInvoker
from functions.serving.metrics import PredictorMetrics
from functions.serving.runtime import FunctionModel

BODY = orjson.dumps({"id": "r-1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]})


def echo_model() -> FunctionModel:
    return FunctionModel(Echo(), PredictorMetrics(CollectorRegistry()), max_batch_size=8, max_delay_ms=0, max_queue=8)


def with_model(scenario: Callable[[FunctionModel], Awaitable[Any]], *, loaded: bool = True) -> Any:
    async def main() -> Any:
        model = echo_model()
        try:
            if loaded:
                await model.load_async(lambda: None)
            return await scenario(model)
        finally:
            await model.close()

    return asyncio.run(main())


def test_the_answer_is_the_v2_response_and_the_version_that_computed_it() -> None:
    async def scenario(model: FunctionModel) -> tuple[bytes, str]:
        return await InProcessInvoker({"echo": model}).infer("echo", BODY, 1)

    content, version = with_model(scenario)
    doc = orjson.loads(content)
    assert version == "1" and doc["model_version"] == "1"
    assert (doc["id"], doc["model_name"]) == ("r-1", "echo")
    (output,) = doc["outputs"]
    assert (output["name"], output["shape"], output["data"]) == ("y", [1, 2], [1.0, 2.0])


@pytest.mark.parametrize(
    ("priority", "level"),
    [(0, SYNC), (1, EVENT), (2, BACKGROUND), (7, EVENT), (-1, EVENT)],
    ids=["high", "normal", "low", "unknown-is-normal", "negative-is-normal"],
)
def test_the_event_priority_picks_the_batcher_level(priority: int, level: int) -> None:
    levels: list[int] = []

    async def scenario(model: FunctionModel) -> None:
        run = model.run

        async def recording(request: Any, at: int = SYNC) -> Any:
            levels.append(at)
            return await run(request, at)

        model.run = recording  # type: ignore[method-assign]
        await InProcessInvoker({"echo": model}).infer("echo", BODY, priority)

    with_model(scenario)
    assert levels == [level]


def test_an_event_that_arrives_while_the_model_loads_waits_for_it() -> None:
    async def scenario(model: FunctionModel) -> tuple[bool, bytes]:
        answer = asyncio.create_task(InProcessInvoker({"echo": model}, ready_timeout_s=30).infer("echo", BODY, 1))
        await asyncio.sleep(0)  # the invoker is now waiting for readiness
        waited = not answer.done()
        await model.load_async(lambda: None)
        content, _ = await asyncio.wait_for(answer, 10)
        return waited, content

    waited, content = with_model(scenario, loaded=False)
    assert waited
    assert orjson.loads(content)["outputs"][0]["data"] == [1.0, 2.0]


def test_a_model_that_stays_unready_is_a_retryable_not_ready() -> None:
    async def scenario(model: FunctionModel) -> None:
        await InProcessInvoker({"echo": model}, ready_timeout_s=0.05).infer("echo", BODY, 1)

    with pytest.raises(NotReadyError, match="model echo is still loading") as raised:
        with_model(scenario, loaded=False)
    assert raised.value.retryable and raised.value.status == 503


def test_a_function_this_replica_does_not_serve_is_unknown_model() -> None:
    async def scenario(model: FunctionModel) -> None:
        await InProcessInvoker({"echo": model}).infer("embedder", BODY, 1)

    with pytest.raises(UnknownModelError, match="'embedder' is not served") as raised:
        with_model(scenario)
    assert raised.value.status == 404 and not raised.value.retryable


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2]}]}), "x"),
    ],
    ids=["not-json", "shape-and-data-disagree"],
)
def test_a_bad_body_is_invalid_input(body: bytes, reason: str) -> None:
    async def scenario(model: FunctionModel) -> None:
        await InProcessInvoker({"echo": model}).infer("echo", body, 1)

    with pytest.raises(InvalidInputError, match=reason) as raised:
        with_model(scenario)
    assert raised.value.status == 400 and not raised.value.retryable
