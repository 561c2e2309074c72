"""The classifier head and its artifact format (``head.safetensors`` + ``head.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from core.errors import ArtifactError
from functions.serving.artifact_checks import expect_shapes

WEIGHTS = "head.safetensors"
CONFIG = "head.json"


@dataclass(frozen=True)
class HeadConfig:
    """Shape and labels of a trained head; stored beside the weights."""

    input_dim: int
    hidden_dim: int
    labels: tuple[str, ...]
    version: str


class ClassifierHead(nn.Module):
    """Embedding → hidden ReLU layer → logits over the labels."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(config.input_dim, config.hidden_dim),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(config.hidden_dim, len(config.labels)),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings)  # type: ignore[no-any-return]


def save_head(head: ClassifierHead, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(directory / WEIGHTS))
    (directory / CONFIG).write_text(json.dumps(asdict(head.config), indent=2) + "\n")


def load_head(directory: Path) -> ClassifierHead:
    config_file, weights_file = directory / CONFIG, directory / WEIGHTS
    if not config_file.is_file() or not weights_file.is_file():
        raise FileNotFoundError(f"{directory} must contain {CONFIG} and {WEIGHTS}")
    config = read_config(config_file)
    expect_shapes(weights_file, expected_tensors(config))
    head = ClassifierHead(config)
    head.load_state_dict(load_file(str(weights_file)))
    return head.eval()


def read_config(path: Path) -> HeadConfig:
    """``head.json``, with every field of the right type and every dimension positive."""
    try:
        raw = json.loads(path.read_text())
        config = HeadConfig(
            input_dim=int(raw["input_dim"]),
            hidden_dim=int(raw["hidden_dim"]),
            labels=tuple(str(label) for label in raw["labels"]),
            version=str(raw["version"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path.name} is not a valid head config: {exc}") from exc
    if config.input_dim < 1 or config.hidden_dim < 1 or len(config.labels) < 2:
        raise ArtifactError(f"{path.name}: dimensions must be positive and there must be at least two labels")
    return config


def expected_tensors(config: HeadConfig) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The weights a head of ``config`` has, as the safetensors header must list them."""
    hidden, classes = config.hidden_dim, len(config.labels)
    return {
        "net.0.weight": ("F32", (hidden, config.input_dim)),
        "net.0.bias": ("F32", (hidden,)),
        "net.3.weight": ("F32", (classes, hidden)),
        "net.3.bias": ("F32", (classes,)),
    }


def packaged_artifact() -> Path:
    return Path(__file__).resolve().parent / "artifact"
