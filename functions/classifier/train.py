"""Train the classifier head from the labelled phrases in ``data/phrases.json``.

Every fourth phrase of each class is held out; the script prints accuracy on that split and writes the
artifact (``head.safetensors`` + ``head.json``) to ``artifact/`` or ``--out``. Deterministic for a seed.

    python -m functions.classifier.train [--out DIR] [--epochs N] [--seed S]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from functions.classifier.head import ClassifierHead, HeadConfig, packaged_artifact, save_head
from functions.text.encoder import SentenceEncoder, default_checkpoint

DATA = Path(__file__).resolve().parent / "data" / "phrases.json"


def split(data: dict[str, list[str]]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Every fourth phrase of a class is held out."""
    train: list[tuple[str, int]] = []
    held_out: list[tuple[str, int]] = []
    for index, label in enumerate(sorted(data)):
        for i, phrase in enumerate(data[label]):
            (held_out if i % 4 == 3 else train).append((phrase, index))
    return train, held_out


def accuracy(head: ClassifierHead, x: torch.Tensor, y: torch.Tensor) -> float:
    head.eval()
    with torch.inference_mode():
        return float((head(x).argmax(dim=1) == y).float().mean())


def train(out: Path, epochs: int = 300, seed: int = 0, hidden: int = 64) -> tuple[float, float]:
    torch.manual_seed(seed)
    raw = DATA.read_bytes()
    data: dict[str, list[str]] = json.loads(raw)
    labels = tuple(sorted(data))
    train_set, held_out = split(data)
    encoder = SentenceEncoder(default_checkpoint())
    x_train = encoder.encode_tensor([p for p, _ in train_set]).clone()
    y_train = torch.tensor([y for _, y in train_set])
    x_test = encoder.encode_tensor([p for p, _ in held_out]).clone()
    y_test = torch.tensor([y for _, y in held_out])

    version = "head-" + hashlib.sha256(raw + f"{epochs}/{seed}/{hidden}".encode()).hexdigest()[:12]
    head = ClassifierHead(HeadConfig(input_dim=encoder.dim, hidden_dim=hidden, labels=labels, version=version))
    optimiser = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        head.train()
        optimiser.zero_grad()
        loss_fn(head(x_train), y_train).backward()
        optimiser.step()
    train_acc, test_acc = accuracy(head, x_train, y_train), accuracy(head, x_test, y_test)
    save_head(head.eval(), out)
    return train_acc, test_acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=packaged_artifact())
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train_acc, test_acc = train(args.out, args.epochs, args.seed)
    print(f"train accuracy {train_acc:.3f}")
    print(f"held-out accuracy {test_acc:.3f}")
    print(f"artifact written to {args.out}")


if __name__ == "__main__":
    main()
