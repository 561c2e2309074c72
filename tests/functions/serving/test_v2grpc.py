"""One tensor, every way a transport can carry it, decodes to the same array; gRPC answers go out raw."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from core.errors import InvalidInputError
from functions.contract import TensorSpec
from functions.serving.datatypes import numpy_to_raw, raw_to_numpy
from functions.serving.tensors import Output, V2Result, decode_inputs
from functions.serving.v2grpc import CONTENTS_FIELDS, encode_result, read_request
from functions.serving.v2json import read_request as read_rest

VALUES = [
    ("BOOL", [True, False, True, True]),
    ("INT8", [-128, 0, 5, 127]),
    ("INT16", [-32768, 1, 2, 32767]),
    ("INT32", [-(2**31), 0, 7, 2**31 - 1]),
    ("INT64", [-(2**63), 0, 9, 2**63 - 1]),
    ("UINT8", [0, 1, 200, 255]),
    ("UINT16", [0, 1, 2, 65535]),
    ("UINT32", [0, 1, 2, 2**32 - 1]),
    ("UINT64", [0, 1, 2, 2**64 - 1]),
    ("FP16", [0.5, -2.0, 3.25, 1024.0]),
    ("FP32", [0.5, -1.25, 3.0, 1e-3]),
    ("FP64", [1e300, -1.0, 0.0, 2.5]),
    ("BYTES", ["héllo", "", "a b", "z"]),
]


def expected(datatype: str, data: list) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([v.encode() for v in data], dtype=object).reshape(2, 2)
    return np.array(data, dtype=raw_to_numpy(b"", datatype, [0]).dtype).reshape(2, 2)


def grpc_request(datatype: str, data: list, raw: bool) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype=datatype, shape=[2, 2])
    request = pb.ModelInferRequest(model_name="m", id="g-1", inputs=[tensor])
    if raw:
        request.raw_input_contents.append(numpy_to_raw(expected(datatype, data), datatype))
    else:
        values = [v.encode() for v in data] if datatype == "BYTES" else data
        getattr(request.inputs[0].contents, CONTENTS_FIELDS[datatype]).extend(values)
    return request


@pytest.mark.parametrize(("datatype", "data"), VALUES, ids=[v[0] for v in VALUES])
def test_every_datatype_decodes_alike_from_json_binary_and_grpc(datatype, data):
    specs = (TensorSpec("x", datatype, (-1, 2)),)
    want = expected(datatype, data)
    raw = numpy_to_raw(want, datatype)
    header = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": datatype, "shape": [2, 2], "parameters": {"binary_data_size": len(raw)}}]}
    )
    readings = {
        "rest binary": read_rest(header + raw, len(header)),
        "grpc raw": read_request(grpc_request(datatype, data, raw=True)),
    }
    if datatype != "FP16":  # FP16 has no JSON numbers or typed contents of its own precision
        readings["rest json"] = read_rest(
            orjson.dumps({"inputs": [{"name": "x", "datatype": datatype, "shape": [2, 2], "data": data}]})
        )
        readings["grpc typed"] = read_request(grpc_request(datatype, data, raw=False))
    for way, request in readings.items():
        got = decode_inputs(request.inputs, specs)["x"]
        assert got.dtype == want.dtype and got.shape == want.shape, way
        assert got.tolist() == want.tolist(), way


def test_grpc_request_id_and_requested_outputs_are_kept():
    request = grpc_request("FP32", [1.0, 2.0, 3.0, 4.0], raw=True)
    request.outputs.add(name="y")
    read = read_request(request)
    assert (read.id, read.outputs, read.model) == ("g-1", frozenset({"y"}), "m")
    assert read_request(pb.ModelInferRequest(model_name="m")).id is None


def test_grpc_answers_carry_every_output_raw():
    outputs = [
        Output("label", "BYTES", np.array([b"billing", b"shipping"], dtype=object)),
        Output("p", "FP32", np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)),
    ]
    response = encode_result(V2Result("r-1", "m", "v3", outputs))
    assert (response.id, response.model_name, response.model_version) == ("r-1", "m", "v3")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("label", "BYTES", [2]),
        ("p", "FP32", [2, 2]),
    ]
    assert not any(o.HasField("contents") for o in response.outputs)
    assert raw_to_numpy(response.raw_output_contents[0], "BYTES", [2]).tolist() == [b"billing", b"shipping"]
    np.testing.assert_array_equal(raw_to_numpy(response.raw_output_contents[1], "FP32", [2, 2]), outputs[1].array)


@pytest.mark.parametrize(
    ("datatype", "raw", "shape", "message"),
    [
        ("FP32", b"\x00" * 6, [2], "not a whole number of FP32 values"),
        ("FP32", b"\x00" * 12, [2], "cannot reshape"),
        ("BYTES", b"\x05\x00\x00\x00ab", [1], "runs past the end"),
        ("BYTES", b"\x01\x00", [1], "length is cut off"),
        ("BYTES", b"\x01\x00\x00\x00a", [2], "cannot reshape"),
    ],
)
def test_raw_contents_that_do_not_fit_the_shape_are_rejected(datatype, raw, shape, message):
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype=datatype, shape=shape)
    request = pb.ModelInferRequest(model_name="m", inputs=[tensor], raw_input_contents=[raw])
    with pytest.raises(InvalidInputError) as err:
        decode_inputs(read_request(request).inputs, (TensorSpec("x", datatype, (-1,)),))
    assert f"input 'x': data does not decode as {datatype}{shape}" in err.value.message
    assert message in err.value.message


class _AbortedError(Exception):
    pass


class _Context:
    """What the servicer's authorisation reads of a gRPC context, with ``abort`` recorded."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata
        self.aborted: tuple[object, str] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"

    async def abort(self, code: object, message: str) -> None:
        self.aborted = (code, message)
        raise _AbortedError(message)


@pytest.mark.parametrize(
    ("enabled", "token", "metadata", "refused"),
    [
        (False, "s3cret-for-tests", (("authorization", "Bearer s3cret-for-tests"),), "UNIMPLEMENTED"),
        (True, None, (), "PERMISSION_DENIED"),
        (True, None, (("authorization", "Bearer anything"),), "PERMISSION_DENIED"),
        (True, "s3cret-for-tests", (), "PERMISSION_DENIED"),
        (True, "s3cret-for-tests", (("authorization", "Bearer wrong"),), "PERMISSION_DENIED"),
        (True, "s3cret-for-tests", (("authorization", "Bearer s3cret-for-tests"),), None),
    ],
    ids=["off", "on-without-token-configured", "on-without-token-any-bearer", "no-bearer", "wrong-bearer", "right"],
)
def test_the_repository_extension_on_grpc_needs_it_enabled_and_the_admin_token(
    enabled: bool, token: str | None, metadata: tuple[tuple[str, str], ...], refused: str | None
) -> None:
    import asyncio

    import grpc

    from functions.serving.v2grpc import V2Servicer

    servicer = V2Servicer(None, None, repository_enabled=enabled, admin_token=token)  # type: ignore[arg-type]
    context = _Context(metadata)

    async def call() -> None:
        await servicer._authorize_repository("unload", "echo", context)

    if refused is None:
        asyncio.run(call())
        assert context.aborted is None
    else:
        with pytest.raises(_AbortedError):
            asyncio.run(call())
        assert context.aborted is not None and context.aborted[0] == getattr(grpc.StatusCode, refused)
