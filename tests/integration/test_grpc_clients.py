"""The standard v2 gRPC clients (tritonclient, KServe's SDK) against real replicas, compared with REST.

Both clients send tensors as ``raw_input_contents``; KServe's SDK also sends typed contents when given lists.
Every answer must hold the same values as the REST answer to the same request.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from tests.support.replicas import Replica, start_replica

pytestmark = pytest.mark.integration
TRITON_CALL = Path(__file__).resolve().parents[1] / "support" / "triton_grpc_call.py"

# (function, inputs as (name, datatype, shape, data), requested outputs)
CASES = [
    ("echo", [("x", "FP32", [2, 3], [0.5, -1.25, 3.0, 1e-3, 7.0, -0.0])], []),
    ("embedder", [("text", "BYTES", [2], ["raw contents", "héllo wörld"])], []),
    ("classifier", [("text", "BYTES", [2], ["where is my parcel?", "I was charged twice"])], []),
    ("classifier", [("text", "BYTES", [1], ["I was charged twice"])], ["label"]),
]


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    replica = start_replica("echo", tmp_path_factory.mktemp("echo-grpc"))
    yield replica
    replica.process.stop()


@pytest.fixture
def replicas(echo: Replica, embedder: Replica, classifier: Replica) -> dict[str, Replica]:
    return {"echo": echo, "embedder": embedder, "classifier": classifier}


def rest(replica: Replica, model: str, inputs, outputs) -> dict[str, np.ndarray]:
    body = {
        "inputs": [{"name": n, "datatype": d, "shape": s, "data": v} for n, d, s, v in inputs],
        "outputs": [{"name": o} for o in outputs] or None,
    }
    r = httpx.post(f"{replica.url}/v2/models/{model}/infer", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}


def triton_grpc(replica: Replica, model: str, inputs, outputs) -> dict[str, np.ndarray]:
    call = {
        "url": f"127.0.0.1:{replica.grpc_port}",
        "model": model,
        "inputs": [{"name": n, "datatype": d, "shape": s, "data": v} for n, d, s, v in inputs],
        "outputs": outputs,
    }
    done = subprocess.run(
        [sys.executable, str(TRITON_CALL)], input=json.dumps(call), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["id"] == "triton-1" and answer["model_version"]
    return {name: np.array(o["data"]).reshape(o["shape"]) for name, o in answer["outputs"].items()}


def kserve_grpc(replica: Replica, model: str, inputs, outputs, raw: bool) -> dict[str, np.ndarray]:
    tensors = []
    for name, datatype, shape, data in inputs:
        if raw:
            tensor = InferInput(name, shape, datatype)
            values = [v.encode() for v in data] if datatype == "BYTES" else data
            dtype = object if datatype == "BYTES" else np.float32
            tensor.set_data_from_numpy(np.array(values, dtype=dtype).reshape(shape), binary_data=True)
        else:
            tensor = InferInput(name, shape, datatype, data=list(data))
        tensors.append(tensor)
    request = InferRequest(
        model_name=model,
        infer_inputs=tensors,
        request_id="sdk-1",
        request_outputs=[RequestedOutput(o) for o in outputs] or None,
    )

    async def call():
        client = InferenceGRPCClient(f"127.0.0.1:{replica.grpc_port}", timeout=60, retries=0)
        try:
            return await client.infer(request)
        finally:
            await client.close()

    response = asyncio.run(call())
    assert response.id == "sdk-1"
    answer = {}
    for out in response.outputs:
        array = out.as_numpy()
        answer[out.name] = (
            np.array([v.decode() for v in array.reshape(-1)]).reshape(array.shape) if out.datatype == "BYTES" else array
        )
    return answer


def assert_same(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert got.keys() == expected.keys()
    for name, array in expected.items():
        assert got[name].shape == array.shape, name
        if array.dtype.kind in "fi":
            np.testing.assert_allclose(got[name].astype(np.float64), array, rtol=1e-6, atol=1e-6)
        else:
            assert got[name].tolist() == array.tolist()


@pytest.mark.parametrize(("function", "inputs", "outputs"), CASES, ids=lambda c: str(c)[:24])
def test_tritonclient_grpc_answers_like_rest(replicas, function, inputs, outputs):
    replica = replicas[function]
    assert_same(triton_grpc(replica, function, inputs, outputs), rest(replica, function, inputs, outputs))


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize(("function", "inputs", "outputs"), CASES, ids=lambda c: str(c)[:24])
def test_kserve_sdk_grpc_answers_like_rest(replicas, function, inputs, outputs, raw):
    replica = replicas[function]
    expected = rest(replica, function, inputs, outputs)
    assert_same(kserve_grpc(replica, function, inputs, outputs, raw), expected)


def test_grpc_errors_keep_their_status_with_raw_contents(echo):
    wrong = [("x", "FP32", [3], [1.0, 2.0, 3.0])]
    with pytest.raises(grpc.RpcError) as err:
        kserve_grpc(echo, "echo", wrong, [], raw=True)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "has shape [3], expected [-1, -1]" in err.value.details()
