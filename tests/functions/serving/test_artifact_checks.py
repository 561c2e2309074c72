"""Artifacts are judged from their safetensors headers before anything is allocated; their digest is content."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core.errors import ArtifactError
from functions.classifier.head import load_head, packaged_artifact
from functions.serving.artifact_checks import TensorInfo, check_directory, digest, expect_shapes, read_header


def raw_file(path: Path, header: object, payload: bytes = b"") -> Path:
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + payload)
    return path


GOOD = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}


@pytest.mark.parametrize(
    ("header", "payload", "problem"),
    [
        (GOOD, bytes(24), None),
        ({**GOOD, "__metadata__": {"format": "pt"}}, bytes(24), None),
        (GOOD, bytes(23), "tensors end at byte"),
        ({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, bytes(20), "does not match its byte range"),
        ({"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), "unknown dtype"),
        ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8), "non-negative"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8), "data_offsets"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": "0-8"}}, bytes(8), "data_offsets"),
        ({"w": [1, 2]}, b"", "not an object"),
        ([1, 2], b"", "not a JSON object"),
    ],
)
def test_headers_are_checked_against_the_file(
    tmp_path: Path, header: object, payload: bytes, problem: str | None
) -> None:
    path = raw_file(tmp_path / "t.safetensors", header, payload)
    if problem is None:
        assert read_header(path) == {"w": TensorInfo("F32", (2, 3))}
    else:
        with pytest.raises(ArtifactError, match=problem):
            read_header(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"\x01\x02", "shorter than its header length"), (struct.pack("<Q", 2**40) + b"{}", "does not fit the file")],
)
def test_truncated_or_lying_lengths_are_refused(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "t.safetensors"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=problem):
        read_header(path)


def test_a_real_file_reads_as_torch_wrote_it(tmp_path: Path) -> None:
    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5, dtype=torch.int64)}, str(tmp_path / "m.safetensors"))
    assert read_header(tmp_path / "m.safetensors") == {"a": TensorInfo("F32", (3, 4)), "b": TensorInfo("I64", (5,))}
    expect_shapes(tmp_path / "m.safetensors", {"a": ("F32", (3, 4)), "b": ("I64", (5,))})
    with pytest.raises(ArtifactError, match="the metadata implies F32\\[4, 3\\]"):
        expect_shapes(tmp_path / "m.safetensors", {"a": ("F32", (4, 3)), "b": ("I64", (5,))})


def test_a_directory_over_the_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(bytes(1000))
    check_directory(tmp_path, 1000)
    with pytest.raises(ArtifactError, match="over the limit of 999"):
        check_directory(tmp_path, 999)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"hidden_dim": 300000}, "net.0.weight is F32\\[64, 384\\], the metadata implies F32\\[300000, 384\\]"),
        ({"input_dim": 768}, "the metadata implies F32\\[64, 768\\]"),
        ({"labels": ["a", "b"]}, "net.3.weight is F32\\[5, 64\\]"),
        ({"hidden_dim": -1}, "dimensions must be positive"),
        ({"hidden_dim": "wide"}, "not a valid head config"),
    ],
)
def test_a_head_config_that_disagrees_with_its_weights_is_refused(tmp_path: Path, change: dict, problem: str) -> None:
    for path in packaged_artifact().iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    config = json.loads((tmp_path / "head.json").read_text())
    (tmp_path / "head.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ArtifactError, match=problem):
        load_head(tmp_path)


def test_the_digest_follows_content_not_place(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text('{"version": "v2"}')
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text('{"version": "v2", "scale": 2}')
    assert digest(tmp_path / "a") != digest(tmp_path / "b")
    assert digest(None) == "packaged"
