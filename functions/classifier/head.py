"""The classifier head and its artifact format (``head.safetensors`` + ``head.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

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
    raw = json.loads(config_file.read_text())
    config = HeadConfig(
        input_dim=int(raw["input_dim"]),
        hidden_dim=int(raw["hidden_dim"]),
        labels=tuple(raw["labels"]),
        version=str(raw["version"]),
    )
    head = ClassifierHead(config)
    head.load_state_dict(load_file(str(weights_file)))
    return head.eval()


def packaged_artifact() -> Path:
    return Path(__file__).resolve().parent / "artifact"
