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

from core.errors import InvalidInputError

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
        return json_to_numpy(self.data, self.datatype, self.shape)


def _check_range(low: int, high: int, dtype: Any, datatype: str) -> None:
    info = np.iinfo(dtype)
    if low < info.min or high > info.max:
        raise ValueError(f"value {low if low < info.min else high} is out of range for {datatype}")


# Per numeric datatype family: the kinds of JSON value it takes, as numpy infers them (b bool, i/u integer,
# f float), and how an error names them.
_FAMILIES = {
    "BOOL": ("b", "true or false"),
    "INT": ("iu", "integers"),
    "UINT": ("iu", "integers"),
    "FP": ("iuf", "numbers"),
}


def json_to_numpy(data: Any, datatype: str, shape: Sequence[int]) -> np.ndarray:
    """Tensor ``data`` given as JSON values (flat or nested, row-major), checked strictly against ``datatype``.

    Numbers must be numbers (no strings, nulls or booleans), BOOL takes only ``true``/``false``, integers must
    be integral and in range, and floats must be finite in the target precision: a value numpy would coerce
    silently (``"false"`` to True, 1.7 to 1, 300 to 44, 1e300 to inf) is an error instead.
    """
    dtype = NUMPY_DTYPES.get(datatype)
    if dtype is None:
        raise ValueError(f"unknown datatype {datatype}")
    if not isinstance(data, list):
        raise ValueError(f"data must be a JSON array, got {type(data).__name__}")
    if datatype == "BYTES":
        return np.array(data, dtype=object).reshape(shape)
    values = np.asarray(data)
    family = datatype.rstrip("0123456789")
    kinds, wanted = _FAMILIES[family]
    if values.size and family in ("INT", "UINT") and values.dtype.kind in "fO":
        # Integers beyond int64 next to negative ones (numpy infers float64), or beyond uint64 (object): read
        # them as Python ints, exactly; real floats are refused below.
        items = np.asarray(data, dtype=object).reshape(-1)
        if not all(type(item) is int for item in items):
            raise ValueError(f"{datatype} data must be {wanted}")
        _check_range(min(items), max(items), dtype, datatype)
        values = np.array(items.tolist(), dtype=dtype).reshape(values.shape)
    elif values.size:
        if values.dtype.kind not in kinds:
            raise ValueError(f"{datatype} data must be {wanted}")
        if family in ("INT", "UINT"):
            _check_range(int(values.min()), int(values.max()), dtype, datatype)
    with np.errstate(over="ignore"):  # checked below
        array = values.astype(dtype, copy=False).reshape(shape)
    if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
        raise ValueError(f"a value is out of range for {datatype}")
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
    # KServe's InferInput upper-cases the datatype; both readings do.
    return name, datatype.upper(), shape, _parameters(tensor, where)


def _parameters(doc: dict[str, Any], where: str) -> dict[str, Any] | None:
    """``parameters`` of a request, input or output: an object or absent (an empty object counts as absent)."""
    value = doc.get("parameters")
    if value is not None and not isinstance(value, dict):
        raise InvalidInputError(f"{where}.parameters must be an object, got {type(value).__name__}")
    return value or None


def _requested(doc: dict[str, Any]) -> list[RequestedOutput] | None:
    if doc.get("outputs") is None:
        return None
    outputs = []
    for j, wanted in enumerate(_field(doc, "outputs", list, "request")):
        if not isinstance(wanted, dict):
            raise InvalidInputError(f"outputs[{j}] must be an object with a name")
        name = _field(wanted, "name", str, f"outputs[{j}]")
        outputs.append(RequestedOutput(name=name, parameters=_parameters(wanted, f"outputs[{j}]")))
    return outputs


def plain_request(doc: dict[str, Any]) -> PlainRequest | None:
    """The request as :class:`PlainRequest`, or None when it needs KServe's objects (see the module doc)."""
    if _parameters(doc, "request") is not None:
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
        parameters=_parameters(doc, "request"),
        request_outputs=outputs,
    )


def _wants_binary(response: InferResponse) -> bool:
    requested = response._requested_outputs or []
    return bool(response._use_binary_outputs) or any(o.binary_data for o in requested)


def _json_data(array: np.ndarray, datatype: str) -> Any:
    if datatype == "BYTES":
        try:
            return [x.decode("utf-8") if isinstance(x, bytes | bytearray) else str(x) for x in array.reshape(-1)]
        except UnicodeDecodeError as exc:
            raise _not_json(exc) from exc
    return np.ascontiguousarray(array).reshape(-1)


def _not_json(exc: Exception) -> InvalidInputError:
    return InvalidInputError(f"output cannot be sent as JSON ({exc}); request binary outputs")


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
    except orjson.JSONEncodeError as exc:
        raise _not_json(exc) from exc


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
