"""A v2 inference request as every transport delivers it, decoded once into validated numpy tensors; the outputs
selected and typed for the answer.

Transports (:mod:`~functions.serving.v2json` for REST and events, :mod:`~functions.serving.v2grpc`,
:mod:`~functions.serving.kserve_objects`) only read their wire format into a :class:`V2Request` and write a
:class:`V2Result` back; what a tensor must look like is decided here. Every rejection says what was expected, so a
400 tells the caller how to fix the request.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import InvalidInputError
from functions.contract import Tensors, TensorSpec
from functions.serving.datatypes import NUMPY_DTYPES, json_to_numpy, raw_to_numpy


@dataclass(frozen=True, slots=True)
class WireTensor:
    """One input as it arrived: ``data`` holds a list of values (or an in-process numpy array), ``raw`` the
    binary layout; exactly one of them is set."""

    name: str
    datatype: str
    shape: list[int]
    data: Any = None
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class V2Request:
    """An inference request before decoding.

    ``outputs`` names the requested outputs (empty: all of them). ``binary_outputs`` and ``binary`` are the REST
    binary extension's choice of layout: the request's default, and per-output overrides.
    """

    id: str | None
    inputs: Sequence[WireTensor]
    outputs: frozenset[str] = frozenset()
    model: str = ""
    binary_outputs: bool = False
    binary: Mapping[str, bool] = field(default_factory=dict)

    def wants_binary(self, output: str) -> bool:
        return self.binary.get(output, self.binary_outputs)


@dataclass(frozen=True, slots=True)
class Output:
    """One output of an answer, already of its declared datatype."""

    name: str
    datatype: str
    array: np.ndarray

    def as_numpy(self) -> np.ndarray:
        return self.array


@dataclass(frozen=True, slots=True)
class V2Result:
    """The answer to one request: its id (the caller's, or a fresh one), and the version that computed it."""

    id: str
    model_name: str
    model_version: str
    outputs: list[Output]


def _expected(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(s.describe() for s in specs)


def _shape_matches(shape: Sequence[int], declared: Sequence[int]) -> bool:
    return len(shape) == len(declared) and all(d == -1 or d == s for s, d in zip(shape, declared))


def _decode(tensor: WireTensor) -> np.ndarray:
    """Values given as a list are checked strictly (:func:`json_to_numpy`); binary tensors and in-process numpy
    arrays are typed already."""
    if tensor.raw is not None:
        return raw_to_numpy(tensor.raw, tensor.datatype, tensor.shape)
    if isinstance(tensor.data, np.ndarray):
        return tensor.data.astype(NUMPY_DTYPES[tensor.datatype], copy=False).reshape(tensor.shape)
    return json_to_numpy(tensor.data, tensor.datatype, tensor.shape)


def _to_numpy(tensor: WireTensor, spec: TensorSpec) -> np.ndarray:
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


def decode_inputs(inputs: Sequence[WireTensor], specs: Sequence[TensorSpec]) -> Tensors:
    """Validate names, datatypes, shapes and batch sizes; return tensors keyed by input name."""
    by_name = {s.name: s for s in specs}
    seen: dict[str, WireTensor] = {}
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


def check_outputs(wanted: Collection[str], specs: Sequence[TensorSpec]) -> None:
    """Reject requested outputs the function does not have (before the request takes a place in a batch)."""
    unknown = set(wanted) - {s.name for s in specs}
    if unknown:
        raise InvalidInputError(f"requested output(s) {sorted(unknown)} do not exist; outputs are: {_expected(specs)}")


def select_outputs(wanted: Collection[str], outputs: Tensors, specs: Sequence[TensorSpec]) -> list[Output]:
    """The requested outputs (all when ``wanted`` is empty), in declared order and cast to their declared
    datatypes."""
    check_outputs(wanted, specs)
    selected = []
    for spec in specs:
        if wanted and spec.name not in wanted:
            continue
        array = outputs[spec.name]
        if spec.datatype != "BYTES":
            array = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[spec.datatype])
        selected.append(Output(spec.name, spec.datatype, array))
    return selected
