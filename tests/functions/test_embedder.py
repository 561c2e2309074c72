"""The embedder's pure inference code, without a server, on the real MiniLM weights."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from functions.embedder.function import Embedder
from functions.serving import artifacts
from functions.text.encoder import default_checkpoint


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    model = Embedder()
    model.load(None)
    return model


def texts(*items: str) -> dict[str, np.ndarray]:
    return {"text": np.array([t.encode() for t in items], dtype=object)}


def test_batch_equals_one_by_one_despite_padding(embedder):
    sentences = ["short", "a considerably longer sentence with many more tokens in it", "mid length one"]
    together = embedder.infer(texts(*sentences))["embedding"]
    alone = np.concatenate([embedder.infer(texts(s))["embedding"] for s in sentences])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize(
    ("anchor", "related", "unrelated"),
    [
        ("How do I reset my password?", "I forgot my login password", "The train leaves at noon"),
        ("A cat sits on the mat", "A kitten is resting on a rug", "Interest rates rose again"),
        ("Python is a programming language", "I write code in Python", "Bananas are rich in potassium"),
    ],
)
def test_related_sentences_are_closer(embedder, anchor, related, unrelated):
    a, r, u = embedder.infer(texts(anchor, related, unrelated))["embedding"]
    assert a @ r > a @ u + 0.2


def test_checkpoint_from_s3_gives_the_same_embeddings(embedder, s3_server, tmp_path):
    client = s3_server.client()
    bucket = f"ckpt-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    root = default_checkpoint()
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".txt", ".safetensors"}:
            client.upload_file(str(path), bucket, f"minilm/{path.relative_to(root)}")
    local = artifacts.resolve(f"s3://{bucket}/minilm", tmp_path, lambda: client)
    from_s3 = Embedder()
    from_s3.load(local)
    assert from_s3.outputs[0].shape == (-1, 384)
    probe = texts("same weights, same vectors")
    np.testing.assert_allclose(from_s3.infer(probe)["embedding"], embedder.infer(probe)["embedding"], atol=1e-6)
