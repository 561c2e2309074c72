"""v2 datatypes as numpy arrays: values given as lists (JSON ``data``, gRPC typed contents) read strictly, and the
binary layout (REST binary extension, gRPC raw contents) read and written.

Every transport reads and writes tensor values here, so a value means the same on all of them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

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
# The binary layout is little-endian whatever the machine's byte order.
_WIRE_DTYPES = {name: np.dtype(dtype).newbyteorder("<") for name, dtype in NUMPY_DTYPES.items() if name != "BYTES"}
_LENGTH = struct.Struct("<I")


def _check_range(low: int, high: int, dtype: Any, datatype: str) -> None:
    info = np.iinfo(dtype)
    if low < info.min or high > info.max:
        raise ValueError(f"value {low if low < info.min else high} is out of range for {datatype}")


# Per numeric datatype family: the kinds of value it takes, as numpy infers them (b bool, i/u integer, f float),
# and how an error names them.
_FAMILIES = {
    "BOOL": ("b", "true or false"),
    "INT": ("iu", "integers"),
    "UINT": ("iu", "integers"),
    "FP": ("iuf", "numbers"),
}


def json_to_numpy(data: Any, datatype: str, shape: Sequence[int]) -> np.ndarray:
    """Tensor ``data`` given as a list of values (flat or nested, row-major), checked strictly against ``datatype``.

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


def raw_to_numpy(raw: bytes, datatype: str, shape: Sequence[int]) -> np.ndarray:
    """A tensor in the binary layout: fixed-size values, or BYTES as 4-byte little-endian lengths each
    followed by that many bytes."""
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise ValueError("a BYTES element's length is cut off")
            (length,) = _LENGTH.unpack_from(raw, offset)
            offset += 4
            if offset + length > len(raw):
                raise ValueError(f"a BYTES element of {length} bytes runs past the end of the data")
            items.append(bytes(raw[offset : offset + length]))
            offset += length
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array.reshape(shape)
    dtype = _WIRE_DTYPES.get(datatype)
    if dtype is None:
        raise ValueError(f"unknown datatype {datatype}")
    if len(raw) % dtype.itemsize:
        raise ValueError(f"{len(raw)} bytes is not a whole number of {datatype} values")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def numpy_to_raw(array: np.ndarray, datatype: str) -> bytes:
    """The binary layout of ``array`` (already of ``datatype``'s numpy type)."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for item in array.reshape(-1):
            value = bytes(item) if isinstance(item, bytes | bytearray) else str(item).encode("utf-8")
            parts += (_LENGTH.pack(len(value)), value)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=_WIRE_DTYPES[datatype]).tobytes()
