"""Checks on an artifact directory before any memory is committed to it, and its content digest.

A safetensors file starts with an 8-byte little-endian header length and a JSON header naming each tensor's
dtype, shape and byte range. Reading only that header tells what loading the file would allocate, so a
version whose metadata and weights disagree (or that is simply too large) is refused before a module is built.
The digest (names and bytes of every file) is the artifact half of a version's identity: two replicas serving
the same label from different files are not serving the same version.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from core.errors import ArtifactError

MAX_HEADER_BYTES = 16 * 2**20  # far above any real header; a larger length means a corrupt or hostile file
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
PACKAGED = "packaged"  # the digest of a version that loads the function's built-in artifacts


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


def read_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors of a safetensors file, from its header only; :class:`ArtifactError` when it is inconsistent."""
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ArtifactError(f"{path.name} is not a safetensors file (shorter than its header length)")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise ArtifactError(f"{path.name}: header length {length} does not fit the file ({size} bytes)")
        try:
            header = json.loads(f.read(length))
        except ValueError as exc:
            raise ArtifactError(f"{path.name}: header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ArtifactError(f"{path.name}: header is not a JSON object")
    tensors: dict[str, TensorInfo] = {}
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = info = _tensor(path.name, name, entry)
        start, stop = entry["data_offsets"]
        if stop - start != math.prod(info.shape) * DTYPE_BYTES[info.dtype]:
            raise ArtifactError(f"{path.name}: {name} {info.dtype}{list(info.shape)} does not match its byte range")
        end = max(end, stop)
    if 8 + length + end != size:
        raise ArtifactError(f"{path.name}: tensors end at byte {8 + length + end}, the file has {size}")
    return tensors


def _tensor(file: str, name: str, entry: object) -> TensorInfo:
    if not isinstance(entry, dict):
        raise ArtifactError(f"{file}: entry {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise ArtifactError(f"{file}: {name} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ArtifactError(f"{file}: {name} has shape {shape!r}, expected non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise ArtifactError(f"{file}: {name} has data_offsets {offsets!r}")
    if not 0 <= offsets[0] <= offsets[1]:
        raise ArtifactError(f"{file}: {name} has data_offsets {offsets!r}")
    return TensorInfo(str(dtype), tuple(shape))


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def check_directory(directory: Path | None, max_bytes: int) -> None:
    """Refuse an artifact directory over ``max_bytes`` or holding a safetensors file with an inconsistent header."""
    if directory is None:
        return
    if not directory.is_dir():
        raise ArtifactError(f"model path {directory} is not a directory")
    files = _files(directory)
    total = sum(p.stat().st_size for p in files)
    if total > max_bytes:
        raise ArtifactError(
            f"artifacts in {directory} take {total} bytes, over the limit of {max_bytes} (WAKESERVE_MAX_ARTIFACT_BYTES)"
        )
    for path in files:
        if path.suffix == ".safetensors":
            read_header(path)


def digest(directory: Path | None) -> str:
    """Content digest of the artifact files (relative names and bytes), 16 hex digits."""
    if directory is None:
        return PACKAGED
    h = hashlib.sha256()
    for path in _files(directory):
        h.update(str(path.relative_to(directory)).encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(2**20):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()[:16]


def expect_shapes(file: Path, expected: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    """The file's header names exactly ``expected`` tensors with these dtypes and shapes."""
    found = read_header(file)
    if set(found) != set(expected):
        raise ArtifactError(f"{file.name} holds {sorted(found)}, expected {sorted(expected)}")
    for name, (dtype, shape) in expected.items():
        if (found[name].dtype, found[name].shape) != (dtype, shape):
            raise ArtifactError(
                f"{file.name}: {name} is {found[name].dtype}{list(found[name].shape)}, "
                f"the metadata implies {dtype}{list(shape)}"
            )
