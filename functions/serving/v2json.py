"""The v2 inference protocol's REST wire format: JSON tensors, and the binary tensor extension.

One reading of a request body (JSON, or a JSON header followed by binary tensors) into a
:class:`~functions.serving.tensors.V2Request`, and one writer of the answer. REST and events both use them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from core.errors import InvalidInputError
from functions.serving.datatypes import numpy_to_raw
from functions.serving.tensors import Output, V2Request, V2Result, WireTensor

# The binary extension's header: the length of the JSON part that precedes binary tensors.
JSON_LENGTH_HEADER = "inference-header-content-length"
JSON_HEADERS = [(b"content-type", b"application/json")]


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


def _parameters(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """``parameters`` of a request, input or output: an object, or absent (read as empty)."""
    value = doc.get("parameters")
    if value is not None and not isinstance(value, dict):
        raise InvalidInputError(f"{where}.parameters must be an object, got {type(value).__name__}")
    return value or {}


def _input(tensor: Any, where: str, body: bytes, offset: int, binary: bool) -> tuple[WireTensor, int]:
    """One input, and where the next binary tensor starts."""
    if not isinstance(tensor, dict):
        raise InvalidInputError(f"{where} must be an object with name, datatype, shape and data")
    name = _field(tensor, "name", str, where)
    datatype = _field(tensor, "datatype", str, where).upper()  # as KServe reads it
    shape = _field(tensor, "shape", list, where)
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidInputError(f"{where}.shape must be a list of non-negative integers, got {shape}")
    size = _parameters(tensor, where).get("binary_data_size")
    if "data" in tensor:
        return WireTensor(name, datatype, shape, data=tensor["data"]), offset
    if size is None or not binary:
        raise InvalidInputError(f"{where} has neither 'data' nor binary data")
    if not isinstance(size, int) or size < 0 or offset + size > len(body):
        raise InvalidInputError(f"{where}: binary_data_size {size} runs past the end of the body")
    return WireTensor(name, datatype, shape, raw=body[offset : offset + size]), offset + size


def read_request(body: bytes, json_length: int | None = None, model: str = "") -> V2Request:
    """A request from a JSON body, or (``json_length`` given) from a JSON header followed by binary tensors."""
    if json_length is not None and not 0 < json_length <= len(body):
        raise InvalidInputError(f"{JSON_LENGTH_HEADER} is {json_length}, body has {len(body)} bytes")
    return read_document(load(body if json_length is None else body[:json_length]), body, json_length, model)


def read_document(doc: dict[str, Any], body: bytes = b"", json_length: int | None = None, model: str = "") -> V2Request:
    """:func:`read_request` once the JSON (``doc``) is read; binary tensors follow it in ``body``."""
    parameters = _parameters(doc, "request")
    offset, inputs = json_length or 0, []
    for i, tensor in enumerate(_field(doc, "inputs", list, "request")):
        wire, offset = _input(tensor, f"inputs[{i}]", body, offset, json_length is not None)
        inputs.append(wire)
    names, binary = [], {}
    if doc.get("outputs") is not None:
        for j, wanted in enumerate(_field(doc, "outputs", list, "request")):
            if not isinstance(wanted, dict):
                raise InvalidInputError(f"outputs[{j}] must be an object with a name")
            names.append(_field(wanted, "name", str, f"outputs[{j}]"))
            choice = _parameters(wanted, f"outputs[{j}]").get("binary_data")
            if choice is not None:
                binary[names[-1]] = bool(choice)
    request_id = doc.get("id")
    return V2Request(
        id=str(request_id) if request_id is not None else None,
        inputs=inputs,
        outputs=frozenset(names),
        model=model,
        binary_outputs=bool(parameters.get("binary_data_output", False)),
        binary=binary,
    )


def parse_request(body: bytes, json_length: int | None, model: str) -> V2Request:
    """:func:`read_request` for the model named ``model``."""
    return read_request(body, json_length, model)


def _not_json(exc: Exception) -> InvalidInputError:
    return InvalidInputError(f"output cannot be sent as JSON ({exc}); request binary outputs")


def _json_data(array: np.ndarray, datatype: str) -> Any:
    if datatype == "BYTES":
        try:
            return [x.decode("utf-8") if isinstance(x, bytes | bytearray) else str(x) for x in array.reshape(-1)]
        except UnicodeDecodeError as exc:
            raise _not_json(exc) from exc
    return np.ascontiguousarray(array).reshape(-1)


def _dumps(doc: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError as exc:
        raise _not_json(exc) from exc


def encode_result(result: V2Result, request: V2Request | None = None) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The response body and headers; outputs ``request`` asks for in the binary layout follow the JSON."""
    outputs, raw = [], []
    for out in result.outputs:
        doc: dict[str, Any] = {"name": out.name, "shape": list(out.array.shape), "datatype": out.datatype}
        if request is not None and request.wants_binary(out.name):
            raw.append(numpy_to_raw(out.array, out.datatype))
            doc["parameters"] = {"binary_data_size": len(raw[-1])}
        else:
            doc["parameters"] = None
            doc["data"] = _json_data(out.array, out.datatype)
        outputs.append(doc)
    header = _dumps(
        {
            "model_name": result.model_name,
            "model_version": result.model_version,
            "id": result.id,
            "parameters": None,
            "outputs": outputs,
        }
    )
    if not raw:
        return header, JSON_HEADERS
    return b"".join([header, *raw]), [
        (b"content-type", b"application/octet-stream"),
        (JSON_LENGTH_HEADER.encode(), str(len(header)).encode()),
    ]


def encode_plain(outputs: list[Output], response_id: str, model_name: str, model_version: str) -> bytes:
    """The JSON response body for ``outputs``, every one as JSON ``data``."""
    body, _ = encode_result(V2Result(response_id, model_name, model_version, outputs))
    return body
