"""The hot path of the v2 REST API: ``POST /v2/models/{name}[/versions/{v}]/infer`` as a lean ASGI handler.

The wire format is exactly KServe's (JSON tensors and the binary tensor extension); only the machinery is
lighter. Going through FastAPI's route, pydantic validation of the request and response, and
``jsonable_encoder`` cost more CPU per request than the model itself for small inputs, on the same core that
runs the model. Everything else (health, metadata, repository) stays on KServe's FastAPI routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput

from events.errors import InvalidInputError, PayloadTooLargeError
from functions.transport_errors import as_wakeserve_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INFER_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
_JSON = [(b"content-type", b"application/json")]


def _field(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise InvalidInputError(f"{where} is missing '{key}'")
    value = doc[key]
    if not isinstance(value, kind):
        raise InvalidInputError(f"{where}.{key} has the wrong type ({type(value).__name__})")
    return value


def parse_request(body: bytes, json_length: int | None, model_name: str) -> InferRequest:
    """A v2 InferRequest from a JSON body, or from a JSON header followed by binary tensors."""
    header = body if json_length is None else body[:json_length]
    if json_length is not None and not 0 < json_length <= len(body):
        raise InvalidInputError(f"{INFERENCE_CONTENT_LENGTH_HEADER} is {json_length}, body has {len(body)} bytes")
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"request body is not a valid v2 inference request: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InvalidInputError("request body is not a valid v2 inference request: expected a JSON object")
    raw = _field(doc, "inputs", list, "request")
    offset = json_length or 0
    inputs = []
    for i, tensor in enumerate(raw):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict):
            raise InvalidInputError(f"{where} must be an object with name, datatype, shape and data")
        name = _field(tensor, "name", str, where)
        datatype = _field(tensor, "datatype", str, where)
        shape = _field(tensor, "shape", list, where)
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise InvalidInputError(f"{where}.shape must be a list of non-negative integers, got {shape}")
        parameters = tensor.get("parameters") or None
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
    outputs = None
    if doc.get("outputs") is not None:
        outputs = []
        for j, wanted in enumerate(_field(doc, "outputs", list, "request")):
            if not isinstance(wanted, dict):
                raise InvalidInputError(f"outputs[{j}] must be an object with a name")
            name = _field(wanted, "name", str, f"outputs[{j}]")
            outputs.append(RequestedOutput(name=name, parameters=wanted.get("parameters")))
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


def encode_response(response: InferResponse) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Body and headers; the binary extension is delegated to KServe's own encoder."""
    if _wants_binary(response):
        body, json_length = response.to_rest()
        if isinstance(body, bytes):
            return body, [
                (b"content-type", b"application/octet-stream"),
                (INFERENCE_CONTENT_LENGTH_HEADER.encode(), str(json_length).encode()),
            ]
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), _JSON
    outputs = []
    for out in response.outputs:
        data = out.data if isinstance(out.data, np.ndarray) else out.as_numpy()
        outputs.append(
            {
                "name": out.name,
                "shape": list(out.shape),
                "datatype": out.datatype,
                "parameters": out.parameters or None,
                "data": _json_data(data, out.datatype),
            }
        )
    doc = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "id": response.id,
        "parameters": response.parameters or None,
        "outputs": outputs,
    }
    try:
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), _JSON
    except (orjson.JSONEncodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"output cannot be sent as JSON ({exc}); request binary outputs") from exc


class V2InferRoute:
    """ASGI middleware: serve v2 infer calls directly, pass everything else to the FastAPI app."""

    def __init__(self, app: ASGIApp, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.app = app
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INFER_PATH.match(scope["path"])
            if match and match.group("version") is None:
                await self._infer(match.group("name"), scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLargeError(f"request body is over the {self.max_body_bytes}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _infer(self, model_name: str, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await self._read_body(scope, receive)
            json_length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
            try:
                length = int(json_length) if json_length is not None else None
            except ValueError:
                raise InvalidInputError(f"{INFERENCE_CONTENT_LENGTH_HEADER} must be an integer") from None
            request = parse_request(body, length, model_name)
            response, _ = await self.dataplane.infer(model_name, request, headers)
            content, response_headers = encode_response(response)
            status = 200
        except ConnectionResetError:
            return
        except Exception as exc:  # noqa: BLE001 - translated once, below
            err = as_wakeserve_error(exc)
            status, content, response_headers = err.status, orjson.dumps(err.to_json()), list(_JSON)
            if err.retryable:
                response_headers.append((b"retry-after", b"1"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*response_headers, (b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})
