"""KServe's request and response objects (``InferRequest``, ``InferResponse``) read into and written from the
wire-neutral :class:`~functions.serving.tensors.V2Request` and :class:`~functions.serving.tensors.V2Result`.

They are what KServe's ``Model`` contract passes in process; our own transports do not use them. This is the
one module that reaches into their private fields.
"""

from __future__ import annotations

from collections.abc import Sequence

from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from functions.contract import Tensors, TensorSpec
from functions.serving.datatypes import numpy_to_raw
from functions.serving.tensors import V2Request, V2Result, WireTensor, decode_inputs, select_outputs


def read_infer_request(request: InferRequest) -> V2Request:
    inputs = [
        WireTensor(t.name, t.datatype, [int(d) for d in t.shape], raw=t._raw_data)
        if t._raw_data is not None
        else WireTensor(t.name, t.datatype, [int(d) for d in t.shape], data=t.data)
        for t in request.inputs
    ]
    requested = request.request_outputs or []
    return V2Request(
        id=request.id or None,
        inputs=inputs,
        outputs=frozenset(o.name for o in requested),
        model=request.model_name or "",
        binary_outputs=bool(request.use_binary_outputs),
        binary={o.name: bool(o.binary_data) for o in requested if o.binary_data is not None},
    )


def to_infer_response(request: InferRequest, result: V2Result) -> InferResponse:
    """The answer as KServe's object. A gRPC request's outputs are in the binary layout already, since KServe's
    own gRPC encoder cannot take numpy arrays while binary outputs are on."""
    outputs = []
    for out in result.outputs:
        infer_output = InferOutput(name=out.name, shape=list(out.array.shape), datatype=out.datatype, data=out.array)
        if request.from_grpc:
            infer_output._data, infer_output._raw_data = None, numpy_to_raw(out.array, out.datatype)
        outputs.append(infer_output)
    return InferResponse(
        response_id=result.id,
        model_name=result.model_name,
        model_version=result.model_version,
        infer_outputs=outputs,
        from_grpc=request.from_grpc,
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )


def decode_request(request: InferRequest, specs: Sequence[TensorSpec]) -> Tensors:
    return decode_inputs(read_infer_request(request).inputs, specs)


def encode_response(
    request: InferRequest,
    outputs: Tensors,
    specs: Sequence[TensorSpec],
    response_id: str,
    model_name: str,
    model_version: str,
) -> InferResponse:
    """The v2 response to ``request`` for a function's ``outputs``: the requested ones, of their declared types."""
    selected = select_outputs({o.name for o in request.request_outputs or []}, outputs, specs)
    return to_infer_response(request, V2Result(response_id, model_name, model_version, selected))
