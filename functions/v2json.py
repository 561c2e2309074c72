"""The v2 inference protocol's REST wire format: JSON tensors, and the binary tensor extension.

Two readings of a request body. A *plain* request (tensors as JSON ``data``, no ``parameters`` anywhere) is read
into :class:`PlainRequest` and answered without KServe's request and response objects, which cost more CPU per
call than a small model: it is what events carry and what most clients send. Anything else (binary tensors,
``binary_data_output``, parameters) becomes a KServe ``InferRequest`` and is answered through KServe's own
encoder. Both readings apply the same checks and give the same errors; both write the same JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput

from events.errors import InvalidInputError

JSON_HEADERS = [(b"content-type", b"application/json")]
NUMPY_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


@dataclass(frozen=True, slots=True)
class PlainTensor:
    """An input given as JSON ``data``; decodes like KServe's ``InferInput.as_numpy``."""

    name: str
    datatype: str
    shape: list[int]
    data: Any

    def as_numpy(self) -> np.ndarray:
        dtype = NUMPY_DTYPES.get(self.datatype)
        if dtype is None:
            raise ValueError(f"unknown datatype {self.datatype}")
        array: np.ndarray = np.array(self.data, dtype=dtype).reshape(self.shape)
        return array


@dataclass(frozen=True, slots=True)
class PlainRequest:
    """A request with JSON tensors only; ``outputs`` names the requested outputs (empty: all of them)."""

    id: str | None
    inputs: list[PlainTensor]
    outputs: frozenset[str]


def load(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"request body is not a valid v2 inference request: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InvalidInputError("request body is not a valid v2 inference request: expected a JSON object")
    return doc


def _field(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise InvalidInputError(f"{where} is missing '{key}'")
    value = doc[key]
    if not isinstance(value, kind):
        raise InvalidInputError(f"{where}.{key} has the wrong type ({type(value).__name__})")
    return value


def _tensor_header(tensor: Any, where: str) -> tuple[str, str, list[int], dict[str, Any] | None]:
    if not isinstance(tensor, dict):
        raise InvalidInputError(f"{where} must be an object with name, datatype, shape and data")
    name = _field(tensor, "name", str, where)
    datatype = _field(tensor, "datatype", str, where)
    shape = _field(tensor, "shape", list, where)
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidInputError(f"{where}.shape must be a list of non-negative integers, got {shape}")
    return name, datatype, shape, tensor.get("parameters") or None


def _requested(doc: dict[str, Any]) -> list[RequestedOutput] | None:
    if doc.get("outputs") is None:
        return None
    outputs = []
    for j, wanted in enumerate(_field(doc, "outputs", list, "request")):
        if not isinstance(wanted, dict):
            raise InvalidInputError(f"outputs[{j}] must be an object with a name")
        name = _field(wanted, "name", str, f"outputs[{j}]")
        outputs.append(RequestedOutput(name=name, parameters=wanted.get("parameters")))
    return outputs


def plain_request(doc: dict[str, Any]) -> PlainRequest | None:
    """The request as :class:`PlainRequest`, or None when it needs KServe's objects (see the module doc)."""
    if doc.get("parameters"):
        return None
    inputs = []
    for i, tensor in enumerate(_field(doc, "inputs", list, "request")):
        name, datatype, shape, parameters = _tensor_header(tensor, f"inputs[{i}]")
        if parameters is not None or "data" not in tensor:
            return None
        inputs.append(PlainTensor(name, datatype, shape, tensor["data"]))
    outputs = _requested(doc)
    if outputs is not None and any(o.parameters for o in outputs):
        return None
    request_id = doc.get("id")
    return PlainRequest(
        str(request_id) if request_id is not None else None,
        inputs,
        frozenset(o.name for o in outputs or ()),
    )


def parse_request(body: bytes, json_length: int | None, model_name: str) -> InferRequest:
    """A v2 InferRequest from a JSON body, or from a JSON header followed by binary tensors."""
    if json_length is not None and not 0 < json_length <= len(body):
        raise InvalidInputError(f"{INFERENCE_CONTENT_LENGTH_HEADER} is {json_length}, body has {len(body)} bytes")
    return infer_request(load(body if json_length is None else body[:json_length]), body, json_length, model_name)


def infer_request(doc: dict[str, Any], body: bytes, json_length: int | None, model_name: str) -> InferRequest:
    """:func:`parse_request` once the JSON (``doc``) is read; binary tensors follow it in ``body``."""
    offset = json_length or 0
    inputs = []
    for i, tensor in enumerate(_field(doc, "inputs", list, "request")):
        where = f"inputs[{i}]"
        name, datatype, shape, parameters = _tensor_header(tensor, where)
        infer_input = InferInput(name=name, shape=shape, datatype=datatype, parameters=parameters)
        size = (parameters or {}).get("binary_data_size")
        if "data" in tensor:
            infer_input.data = tensor["data"]
        elif size is not None and json_length is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(body):
                raise InvalidInputError(f"{where}: binary_data_size {size} runs past the end of the body")
            infer_input._raw_data = body[offset : offset + size]
            offset += size
        else:
            raise InvalidInputError(f"{where} has neither 'data' nor binary data")
        inputs.append(infer_input)
    outputs = _requested(doc)
    request_id = doc.get("id")
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=str(request_id) if request_id is not None else None,
        parameters=doc.get("parameters"),
        request_outputs=outputs,
    )


def _wants_binary(response: InferResponse) -> bool:
    requested = response._requested_outputs or []
    return bool(response._use_binary_outputs) or any(o.binary_data for o in requested)


def _json_data(array: np.ndarray, datatype: str) -> Any:
    if datatype == "BYTES":
        return [x.decode("utf-8") if isinstance(x, bytes | bytearray) else str(x) for x in array.reshape(-1)]
    return np.ascontiguousarray(array).reshape(-1)


def _output(name: str, shape: Any, datatype: str, array: np.ndarray, parameters: Any = None) -> dict[str, Any]:
    return {
        "name": name,
        "shape": list(shape),
        "datatype": datatype,
        "parameters": parameters or None,
        "data": _json_data(array, datatype),
    }


def _dumps(doc: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    except (orjson.JSONEncodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"output cannot be sent as JSON ({exc}); request binary outputs") from exc


def encode_plain(
    outputs: Sequence[tuple[str, str, np.ndarray]], response_id: str, model_name: str, model_version: str
) -> bytes:
    """The JSON response body for ``(name, datatype, array)`` outputs: what :func:`encode_response` writes."""
    return _dumps(
        {
            "model_name": model_name,
            "model_version": model_version,
            "id": response_id,
            "parameters": None,
            "outputs": [_output(name, array.shape, datatype, array) for name, datatype, array in outputs],
        }
    )


def encode_response(response: InferResponse) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Body and headers; the binary extension is delegated to KServe's own encoder."""
    if _wants_binary(response):
        body, json_length = response.to_rest()
        if isinstance(body, bytes):
            return body, [
                (b"content-type", b"application/octet-stream"),
                (INFERENCE_CONTENT_LENGTH_HEADER.encode(), str(json_length).encode()),
            ]
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), JSON_HEADERS
    outputs = [
        _output(
            out.name,
            out.shape,
            out.datatype,
            out.data if isinstance(out.data, np.ndarray) else out.as_numpy(),
            out.parameters,
        )
        for out in response.outputs
    ]
    doc = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "id": response.id,
        "parameters": response.parameters or None,
        "outputs": outputs,
    }
    return _dumps(doc), JSON_HEADERS
