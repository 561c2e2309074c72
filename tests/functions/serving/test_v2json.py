from __future__ import annotations

import copy
import json

import numpy as np
import orjson
import pytest
from kserve.protocol.infer_type import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    serialize_byte_tensor,
)
from kserve.protocol.rest.v2_datamodels import InferenceResponse

from core.errors import InvalidInputError
from functions.contract import TensorSpec
from functions.serving.datatypes import raw_to_numpy
from functions.serving.kserve_objects import decode_request, read_infer_request
from functions.serving.kserve_objects import encode_response as encode_tensors
from functions.serving.tensors import Output, V2Request, V2Result, decode_inputs, select_outputs
from functions.serving.v2json import encode_plain, encode_result, load, parse_request, read_document, read_request


def encode_response(response: InferResponse) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Our encoder given what a KServe response object holds."""
    outputs = [Output(o.name, o.datatype, o.data) for o in response.outputs]
    result = V2Result(response.id, response.model_name, response.model_version, outputs)
    return encode_result(result, V2Request(None, [], binary_outputs=bool(response._use_binary_outputs)))


def response(outputs, requested=None, binary=False):
    infer_outputs = [InferOutput(name=n, shape=list(a.shape), datatype=d, data=a) for n, d, a in outputs]
    return InferResponse(
        response_id="r1",
        model_name="m",
        model_version="7",
        infer_outputs=infer_outputs,
        use_binary_outputs=binary,
        requested_outputs=requested,
    )


OUTPUTS = [
    [("y", "FP32", np.arange(6, dtype=np.float32).reshape(2, 3) / 7)],
    [("label", "BYTES", np.array([b"a", "é".encode()], dtype=object)), ("p", "FP32", np.ones((2, 2), np.float32))],
    [("i", "INT64", np.array([[1, -2]], np.int64)), ("b", "BOOL", np.array([True, False]))],
]


@pytest.mark.parametrize("outputs", OUTPUTS)
def test_json_encoding_matches_kserve(outputs):
    ours, headers = encode_response(response(copy.deepcopy(outputs)))
    theirs, json_length = response(copy.deepcopy(outputs)).to_rest()
    assert json_length is None and headers == [(b"content-type", b"application/json")]
    # What KServe's v2 route puts on the wire: its dict through the pydantic response model.
    wire = InferenceResponse.model_validate(theirs).model_dump(mode="json")
    mine = orjson.loads(ours)
    assert {k: v for k, v in mine.items() if k != "outputs"} == {k: v for k, v in wire.items() if k != "outputs"}
    for a, b in zip(mine["outputs"], wire["outputs"], strict=True):
        assert {k: v for k, v in a.items() if k != "data"} == {k: v for k, v in b.items() if k != "data"}
        if a["datatype"] in ("FP32", "FP16"):
            np.testing.assert_array_equal(np.float32(a["data"]), np.float32(b["data"]))
        else:
            assert a["data"] == b["data"]


def test_binary_outputs_use_the_extension():
    body, headers = encode_response(response(OUTPUTS[0], binary=True))
    length = int(dict(headers)[b"inference-header-content-length"])
    header = orjson.loads(body[:length])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 24
    np.testing.assert_array_equal(np.frombuffer(body[length:], np.float32), OUTPUTS[0][0][2].ravel())


def test_binary_inputs_are_read_from_after_the_json_header():
    raw_x = np.array([[1.5, 2.5]], np.float32).tobytes()
    raw_t = serialize_byte_tensor(np.array([b"hi", b"there"], dtype=object)).item()
    header = orjson.dumps(
        {
            "id": "b1",
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": len(raw_x)}},
                {"name": "t", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(raw_t)}},
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    )
    request = parse_request(header + raw_x + raw_t, len(header), "m")
    assert request.id == "b1"
    x, t = (raw_to_numpy(i.raw, i.datatype, i.shape) for i in request.inputs if i.raw is not None)
    np.testing.assert_array_equal(x, [[1.5, 2.5]])
    assert list(t) == [b"hi", b"there"]
    assert request.outputs == {"y"} and request.wants_binary("y")


@pytest.mark.parametrize(
    ("body", "json_length", "message"),
    [
        (b"{", None, "not JSON"),
        (b"[1, 2]", None, "expected a JSON object"),
        (b"{}", None, "request is missing 'inputs'"),
        (b'{"inputs": {}}', None, "request.inputs has the wrong type"),
        (b'{"inputs": [3]}', None, "inputs[0] must be an object"),
        (b'{"inputs": [{"name": "x", "shape": [1], "data": [1]}]}', None, "inputs[0] is missing 'datatype'"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}', None, "non-negative"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', None, "neither 'data' nor binary"),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 8}}]}',
            "all",
            "runs past the end",
        ),
        (b'{"inputs": []}', 500, "body has"),
        (b'{"inputs": [], "outputs": [1]}', None, "outputs[0] must be an object"),
    ],
)
def test_malformed_requests_are_rejected_with_a_reason(body, json_length, message):
    with pytest.raises(InvalidInputError) as err:
        parse_request(body, len(body) if json_length == "all" else json_length, "m")
    assert message in err.value.message


TEXT = (TensorSpec("text", "BYTES", (-1,)),)
PAIR = (TensorSpec("a", "FP32", (-1, 2)), TensorSpec("b", "INT64", (-1,)))


def tensor(name, datatype, shape, data):
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def kserve_request(doc) -> InferRequest:
    """The request as KServe's objects carry it in process."""
    inputs = [
        InferInput(name=t["name"], shape=t["shape"], datatype=t["datatype"], data=t["data"]) for t in doc["inputs"]
    ]
    return InferRequest(model_name="m", infer_inputs=inputs)


def decoded_both_ways(body: bytes, specs):
    """(tensors or error message) through KServe's objects, and through the REST reading."""

    def attempt(read):
        try:
            return read()
        except InvalidInputError as exc:
            return exc.message

    kserve = attempt(lambda: decode_request(kserve_request(load(body)), specs))
    return kserve, attempt(lambda: decode_inputs(read_request(body).inputs, specs))


@pytest.mark.parametrize(
    ("specs", "doc"),
    [
        (TEXT, {"inputs": [tensor("text", "BYTES", [2], ["héllo", "b"])]}),
        (TEXT, {"id": 5, "inputs": [tensor("text", "BYTES", [1], ["x"])], "outputs": [{"name": "text"}]}),
        (PAIR, {"inputs": [tensor("b", "INT64", [2], [7, 8]), tensor("a", "FP32", [2, 2], [1, 2, 3.5, 4])]}),
        (PAIR, {"inputs": [tensor("a", "FP32", [1, 2], [[1, 2]]), tensor("b", "INT64", [1], [True])]}),
        (TEXT, {"inputs": [tensor("txt", "BYTES", [1], ["a"])]}),
        (TEXT, {"inputs": []}),
        (TEXT, {"inputs": [tensor("text", "BYTES", [1], ["a"]), tensor("text", "BYTES", [1], ["b"])]}),
        (TEXT, {"inputs": [tensor("text", "FP32", [1], [1.0])]}),
        (TEXT, {"inputs": [tensor("text", "BYTES", [1, 2], ["a", "b"])]}),
        (TEXT, {"inputs": [tensor("text", "BYTES", [3], ["a", "b"])]}),
        (TEXT, {"inputs": [tensor("text", "BYTES", [0], [])]}),
        (TEXT, {"inputs": [tensor("text", "BYTES", [1], [5])]}),
        (PAIR, {"inputs": [tensor("a", "FP32", [1, 2], ["x", 2]), tensor("b", "INT64", [1], [1])]}),
        (PAIR, {"inputs": [tensor("a", "FP32", [2, 2], [1, 2, 3, 4]), tensor("b", "INT64", [1], [1])]}),
        (PAIR, {"inputs": [tensor("a", "FP32", [1, 2], [1, 2]), tensor("b", "INT64", [1], [2**70])]}),
    ],
)
def test_rest_reading_decodes_and_rejects_like_kserve_objects(specs, doc):
    kserve, plain = decoded_both_ways(json.dumps(doc).encode(), specs)
    if isinstance(kserve, str):
        assert plain == kserve
    else:
        assert plain.keys() == kserve.keys()
        for name, array in kserve.items():
            assert plain[name].dtype == array.dtype and plain[name].shape == array.shape
            np.testing.assert_array_equal(plain[name], array)


@pytest.mark.parametrize(
    ("doc", "binary"),
    [
        ({"inputs": [tensor("x", "FP32", [1], [1])]}, False),
        ({"inputs": [tensor("x", "FP32", [1], [1])], "parameters": {}}, False),
        ({"inputs": [{**tensor("x", "FP32", [1], [1]), "parameters": {}}]}, False),
        ({"inputs": [tensor("x", "FP32", [1], [1])], "outputs": [{"name": "y", "parameters": {}}]}, False),
        ({"inputs": [tensor("x", "FP32", [1], [1])], "parameters": {"binary_data_output": True}}, True),
        ({"inputs": [{**tensor("x", "FP32", [1], [1]), "parameters": {"content_type": "str"}}]}, False),
        (
            {"inputs": [tensor("x", "FP32", [1], [1])], "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]},
            True,
        ),
        (
            {
                "inputs": [tensor("x", "FP32", [1], [1])],
                "parameters": {"binary_data_output": True},
                "outputs": [{"name": "y", "parameters": {"binary_data": False}}],
            },
            False,
        ),
    ],
)
def test_outputs_go_binary_only_when_the_extension_asks(doc, binary):
    assert read_document(doc).wants_binary("y") is binary
    kserve = InferRequest(
        model_name="m",
        infer_inputs=[],
        parameters=doc.get("parameters"),
        request_outputs=[RequestedOutput(o["name"], o.get("parameters")) for o in doc.get("outputs", [])] or None,
    )
    if "outputs" not in doc:
        assert read_infer_request(kserve).wants_binary("y") is binary


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "request is missing 'inputs'"),
        ({"inputs": [3]}, "inputs[0] must be an object"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}, "non-negative"),
        ({"inputs": [], "outputs": [1]}, "outputs[0] must be an object"),
    ],
)
def test_a_read_document_and_a_read_body_reject_alike(doc, message):
    errors = []
    for read in (read_document, lambda d: read_request(orjson.dumps(d))):
        with pytest.raises(InvalidInputError) as err:
            read(doc)
        errors.append(err.value.message)
    assert errors[0] == errors[1] and message in errors[0]


@pytest.mark.parametrize("outputs", OUTPUTS)
@pytest.mark.parametrize("wanted", [set(), {"first"}])
def test_json_encoding_is_byte_for_byte_what_kserve_objects_give(outputs, wanted):
    specs = tuple(TensorSpec(n, d, (-1,) * a.ndim) for n, d, a in outputs)
    tensors = {n: a for n, _, a in outputs}
    names = {outputs[0][0]} if wanted else set()
    request = InferRequest(model_name="m", infer_inputs=[], request_outputs=[RequestedOutput(n) for n in names])
    through_kserve, _ = encode_response(encode_tensors(request, tensors, specs, "r1", "m", "7"))
    assert encode_plain(select_outputs(names, tensors, specs), "r1", "m", "7") == through_kserve
    if wanted:  # a requested output is the only one written
        assert [o["name"] for o in orjson.loads(through_kserve)["outputs"]] == [outputs[0][0]]


def one(datatype: str) -> tuple[TensorSpec, ...]:
    return (TensorSpec("x", datatype, (-1,)),)


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("FP32", ["1.5"], "FP32 data must be numbers"),
        ("FP32", [True], "FP32 data must be numbers"),
        ("FP32", [None], "FP32 data must be numbers"),
        ("FP32", [1e300], "out of range for FP32"),
        ("FP16", [70000], "out of range for FP16"),
        ("BOOL", ["false"], "BOOL data must be true or false"),
        ("BOOL", [2], "BOOL data must be true or false"),
        ("INT8", [1.7], "INT8 data must be integers"),
        ("INT32", ["7"], "INT32 data must be integers"),
        ("UINT8", [300], "value 300 is out of range for UINT8"),
        ("UINT8", [-1], "value -1 is out of range for UINT8"),
        ("INT64", [2**63], "out of range for INT64"),
        ("FP32", "abc", "data must be a JSON array"),
        ("FP32", None, "data must be a JSON array"),
        ("BYTES", "abc", "data must be a JSON array"),
    ],
)
def test_json_values_numpy_would_coerce_are_rejected_on_both_readings(datatype, data, message):
    doc = {"inputs": [tensor("x", datatype, [1], data)]}
    kserve, plain = decoded_both_ways(json.dumps(doc).encode(), one(datatype))
    assert isinstance(plain, str) and message in plain, plain
    assert plain == kserve


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        ("FP32", [1, 2.5], np.array([1, 2.5], np.float32)),
        ("FP16", [0.5, 3], np.array([0.5, 3], np.float16)),
        ("BOOL", [True, False], np.array([True, False])),
        ("INT8", [-128, 127], np.array([-128, 127], np.int8)),
        ("UINT64", [2**64 - 1, 0], np.array([2**64 - 1, 0], np.uint64)),
        ("FP64", [1e300, -1], np.array([1e300, -1], np.float64)),
    ],
)
def test_json_values_in_range_decode_exactly_on_both_readings(datatype, data, expected):
    doc = {"inputs": [tensor("x", datatype, [len(data)], data)]}
    kserve, plain = decoded_both_ways(json.dumps(doc).encode(), one(datatype))
    for got in (kserve, plain):
        assert got["x"].dtype == expected.dtype
        np.testing.assert_array_equal(got["x"], expected)


def test_a_lower_case_datatype_reads_as_kserve_reads_it():
    doc = {"inputs": [tensor("x", "fp32", [2], [1, 2])]}
    kserve, plain = decoded_both_ways(json.dumps(doc).encode(), one("FP32"))
    for got in (kserve, plain):
        np.testing.assert_array_equal(got["x"], np.array([1, 2], np.float32))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"parameters": True, "inputs": [tensor("x", "FP32", [1], [1])]}, "request.parameters must be an object"),
        ({"parameters": [1], "inputs": [tensor("x", "FP32", [1], [1])]}, "request.parameters must be an object"),
        ({"inputs": [{**tensor("x", "FP32", [1], [1]), "parameters": "s"}]}, "inputs[0].parameters must be an object"),
        (
            {"inputs": [tensor("x", "FP32", [1], [1])], "outputs": [{"name": "y", "parameters": 3}]},
            "outputs[0].parameters must be an object",
        ),
    ],
)
def test_parameters_that_are_not_objects_are_rejected_on_both_readings(doc, message):
    for read in (read_document, lambda d: read_request(orjson.dumps(d))):
        with pytest.raises(InvalidInputError) as err:
            read(doc)
        assert message in err.value.message
        assert err.value.status == 400


def test_a_bytes_output_that_is_not_utf8_asks_for_binary_outputs_on_both_encoders():
    outputs = [("label", "BYTES", np.array([b"\xff"], dtype=object))]
    with pytest.raises(InvalidInputError, match="request binary outputs"):
        encode_plain([Output(*o) for o in outputs], "r1", "m", "7")
    with pytest.raises(InvalidInputError, match="request binary outputs"):
        encode_response(response(outputs))
