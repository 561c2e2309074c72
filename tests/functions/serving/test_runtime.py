"""FunctionModel's request paths: what is rejected before a request takes a place in a batch."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from prometheus_client import CollectorRegistry

from core.errors import InvalidInputError
from functions.contract import Tensors
from functions.echo.function import Echo
from functions.serving.metrics import PredictorMetrics
from functions.serving.runtime import FunctionModel
from functions.serving.v2json import encode_plain, parse_request, read_request


class Counting(Echo):
    calls = 0

    def infer(self, inputs: Tensors) -> Tensors:
        Counting.calls += 1
        return super().infer(inputs)


def kserve_request(raw: bytes) -> InferRequest:
    doc = orjson.loads(raw)
    return InferRequest(
        model_name="echo",
        infer_inputs=[InferInput(t["name"], t["shape"], t["datatype"], t["data"]) for t in doc["inputs"]],
        parameters=doc.get("parameters"),
        request_outputs=[RequestedOutput(o["name"]) for o in doc["outputs"]],
    )


def body(outputs: list[str], parameters: dict | None = None) -> bytes:
    doc = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}],
        "outputs": [{"name": name} for name in outputs],
    }
    if parameters:
        doc["parameters"] = parameters
    return orjson.dumps(doc)


@pytest.mark.parametrize("plain", [True, False])
def test_an_unknown_requested_output_is_rejected_before_the_model_runs(plain):
    """``plain``: the transports' request; otherwise KServe's objects, as its model contract passes them."""

    async def scenario() -> None:
        model = FunctionModel(
            Counting(), PredictorMetrics(CollectorRegistry()), max_batch_size=8, max_delay_ms=0, max_queue=8
        )
        await model.load_async(lambda: None)
        try:
            ran = Counting.calls
            raw = body(["nope"], None if plain else {"custom": 1})
            with pytest.raises(InvalidInputError, match=r"requested output\(s\) \['nope'\] do not exist"):
                if plain:
                    await model.run(read_request(raw))
                else:
                    await model.infer(kserve_request(raw))
            assert Counting.calls == ran
            # A known output still runs the model once.
            if plain:
                result = await model.run(parse_request(body(["y"]), None, "echo"))
                assert orjson.loads(encode_plain(result.outputs, result.id, "echo", "1"))["outputs"][0]["data"] == [
                    1.0,
                    2.0,
                ]
            else:
                response = await model.infer(kserve_request(body(["y"], {"custom": 1})))
                assert response.outputs[0].data.tolist() == [[1.0, 2.0]]
            assert Counting.calls == ran + 1
        finally:
            await model.close()

    asyncio.run(scenario())
