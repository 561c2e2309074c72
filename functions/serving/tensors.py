"""Decode v2 inference requests into validated numpy tensors, and encode outputs back.

Every rejection says what was expected, so a 400 tells the caller how to fix the request.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from core.errors import InvalidInputError
from functions.contract import Tensors, TensorSpec
from functions.serving.v2json import NUMPY_DTYPES, json_to_numpy


class V2Input(Protocol):
    """What decoding needs of an input: KServe's ``InferInput`` and :class:`functions.serving.v2json.PlainTensor`."""

    @property
    def name(self) -> str: ...
    @property
    def datatype(self) -> str: ...
    @property
    def shape(self) -> list[int]: ...
    @property
    def data(self) -> object: ...
    def as_numpy(self) -> np.ndarray: ...


def _expected(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(s.describe() for s in specs)


def _shape_matches(shape: Sequence[int], declared: Sequence[int]) -> bool:
    return len(shape) == len(declared) and all(d == -1 or d == s for s, d in zip(shape, declared))


def _decode(tensor: V2Input) -> np.ndarray:
    """Values given as JSON or gRPC contents are checked strictly (:func:`json_to_numpy`); binary tensors and
    in-process numpy arrays are typed already."""
    data = tensor.data
    if isinstance(data, np.ndarray) or getattr(tensor, "_raw_data", None) is not None:
        return tensor.as_numpy()
    return json_to_numpy(data, tensor.datatype, tensor.shape)


def _to_numpy(tensor: V2Input, spec: TensorSpec) -> np.ndarray:
    try:
        array = _decode(tensor)
    except Exception as exc:
        raise InvalidInputError(
            f"input '{tensor.name}': data does not decode as {tensor.datatype}{list(tensor.shape)}: {exc}"
        ) from exc
    if spec.datatype == "BYTES":
        flat = array.reshape(-1)
        for i, item in enumerate(flat):
            if isinstance(item, str):
                flat[i] = item.encode("utf-8")
            elif not isinstance(item, bytes | bytearray):
                raise InvalidInputError(
                    f"input '{tensor.name}': element {i} is {type(item).__name__}, expected a string"
                )
        array = flat.reshape(array.shape)
    result: np.ndarray = array
    return result


def decode_request(request: InferRequest, specs: Sequence[TensorSpec]) -> Tensors:
    return decode_inputs(request.inputs, specs)


def decode_inputs(inputs: Sequence[V2Input], specs: Sequence[TensorSpec]) -> Tensors:
    """Validate names, datatypes, shapes and batch sizes; return tensors keyed by input name."""
    by_name = {s.name: s for s in specs}
    seen: dict[str, V2Input] = {}
    for tensor in inputs:
        spec = by_name.get(tensor.name)
        if spec is None:
            raise InvalidInputError(f"unexpected input '{tensor.name}'; this model expects: {_expected(specs)}")
        if tensor.name in seen:
            raise InvalidInputError(f"input '{tensor.name}' is given more than once")
        seen[tensor.name] = tensor
    missing = [s for s in specs if s.name not in seen]
    if missing:
        raise InvalidInputError(f"missing input(s) {_expected(missing)}; this model expects: {_expected(specs)}")

    decoded: Tensors = {}
    batch: int | None = None
    for spec in specs:
        tensor = seen[spec.name]
        if tensor.datatype != spec.datatype:
            raise InvalidInputError(f"input '{spec.name}' has datatype {tensor.datatype}, expected {spec.datatype}")
        shape = [int(d) for d in tensor.shape]
        if not _shape_matches(shape, spec.shape):
            raise InvalidInputError(f"input '{spec.name}' has shape {shape}, expected {list(spec.shape)}")
        if shape[0] == 0:
            raise InvalidInputError(f"input '{spec.name}' has an empty batch; send at least one item")
        array = _to_numpy(tensor, spec)
        if batch is None:
            batch = shape[0]
        elif shape[0] != batch:
            raise InvalidInputError(
                f"inputs disagree on the batch size: '{spec.name}' has {shape[0]}, others have {batch}"
            )
        decoded[spec.name] = array
    return decoded


def encode_response(
    request: InferRequest,
    outputs: Tensors,
    specs: Sequence[TensorSpec],
    response_id: str,
    model_name: str,
    model_version: str,
) -> InferResponse:
    """Build the v2 response, honouring requested outputs and the binary tensor extension."""
    infer_outputs = [
        InferOutput(name=name, shape=list(array.shape), datatype=datatype, data=array)
        for name, datatype, array in select_outputs({o.name for o in request.request_outputs or []}, outputs, specs)
    ]
    return InferResponse(
        response_id=response_id,
        model_name=model_name,
        model_version=model_version,
        infer_outputs=infer_outputs,
        from_grpc=request.from_grpc,
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )


def check_outputs(wanted: Collection[str], specs: Sequence[TensorSpec]) -> None:
    """Reject requested outputs the function does not have (before the request takes a place in a batch)."""
    unknown = set(wanted) - {s.name for s in specs}
    if unknown:
        raise InvalidInputError(f"requested output(s) {sorted(unknown)} do not exist; outputs are: {_expected(specs)}")


def select_outputs(
    wanted: Collection[str], outputs: Tensors, specs: Sequence[TensorSpec]
) -> list[tuple[str, str, np.ndarray]]:
    """``(name, datatype, array)`` of the requested outputs (all when ``wanted`` is empty), in declared order and
    cast to their declared datatypes."""
    check_outputs(wanted, specs)
    selected = []
    for spec in specs:
        if wanted and spec.name not in wanted:
            continue
        array = outputs[spec.name]
        if spec.datatype != "BYTES":
            array = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[spec.datatype])
        selected.append((spec.name, spec.datatype, array))
    return selected
