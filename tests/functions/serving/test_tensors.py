from __future__ import annotations

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from core.errors import InvalidInputError
from functions.contract import TensorSpec
from functions.serving.kserve_objects import decode_request, encode_response

TEXT = (TensorSpec("text", "BYTES", (-1,)),)
PAIR = (TensorSpec("a", "FP32", (-1, 2)), TensorSpec("b", "INT64", (-1,)))


def request(*inputs: InferInput, outputs=None) -> InferRequest:
    return InferRequest(model_name="m", infer_inputs=list(inputs), request_outputs=outputs)


def text(data, shape=None, name="text", datatype="BYTES") -> InferInput:
    return InferInput(name=name, shape=shape or [len(data)], datatype=datatype, data=data)


@pytest.mark.parametrize(
    ("specs", "inputs", "message"),
    [
        (TEXT, [text(["a"], name="txt")], "unexpected input 'txt'; this model expects: text BYTES[-1]"),
        (TEXT, [], "missing input(s) text BYTES[-1]"),
        (TEXT, [text(["a"]), text(["b"])], "given more than once"),
        (TEXT, [text([1.0], datatype="FP32")], "has datatype FP32, expected BYTES"),
        (TEXT, [text(["a", "b"], shape=[1, 2])], "has shape [1, 2], expected [-1]"),
        (TEXT, [text(["a", "b"], shape=[3])], "does not decode as BYTES[3]"),
        (TEXT, [text([], shape=[0])], "empty batch"),
        (TEXT, [text([5])], "element 0 is int, expected a string"),
        (
            PAIR,
            [InferInput("a", [1, 3], "FP32", [1, 2, 3]), InferInput("b", [1], "INT64", [1])],
            "'a' has shape [1, 3], expected [-1, 2]",
        ),
        (
            PAIR,
            [InferInput("a", [2, 2], "FP32", [1, 2, 3, 4]), InferInput("b", [1], "INT64", [1])],
            "disagree on the batch size",
        ),
    ],
)
def test_invalid_requests_say_what_was_expected(specs, inputs, message):
    with pytest.raises(InvalidInputError) as err:
        decode_request(request(*inputs), specs)
    assert message in err.value.message
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("specs", "inputs", "expected"),
    [
        (TEXT, [text(["héllo", "b"])], {"text": np.array(["héllo".encode(), b"b"], dtype=object)}),
        (
            PAIR,
            [InferInput("b", [2], "INT64", [7, 8]), InferInput("a", [2, 2], "FP32", [1, 2, 3, 4])],
            {"a": np.array([[1, 2], [3, 4]], np.float32), "b": np.array([7, 8], np.int64)},
        ),
    ],
)
def test_valid_requests_decode_to_numpy(specs, inputs, expected):
    decoded = decode_request(request(*inputs), specs)
    assert decoded.keys() == expected.keys()
    for name, array in expected.items():
        assert decoded[name].dtype == array.dtype
        np.testing.assert_array_equal(decoded[name], array)


def test_response_carries_id_version_and_requested_outputs_only():
    req = request(text(["x"]), outputs=[RequestedOutput("b")])
    outputs = {"a": np.zeros((1, 2), np.float64), "b": np.array([3], np.int64)}
    response = encode_response(req, outputs, PAIR, response_id="r-1", model_name="m", model_version="v9")
    body, _ = response.to_rest()
    assert body["id"] == "r-1" and body["model_version"] == "v9"
    assert [o["name"] for o in body["outputs"]] == ["b"]
    assert body["outputs"][0]["data"] == [3]


def test_unknown_requested_output_is_rejected():
    req = request(text(["x"]), outputs=[RequestedOutput("nope")])
    with pytest.raises(InvalidInputError, match="do not exist"):
        encode_response(req, {"a": np.zeros((1, 2)), "b": np.zeros(1)}, PAIR, "r", "m", "1")


def test_outputs_are_cast_to_the_declared_datatype():
    req = request(text(["x"]))
    outputs = {"a": np.zeros((1, 2), np.float64), "b": np.array([3], np.int32)}
    body, _ = encode_response(req, outputs, PAIR, "r", "m", "1").to_rest()
    assert [o["datatype"] for o in body["outputs"]] == ["FP32", "INT64"]
