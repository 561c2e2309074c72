"""What a function is: declared tensors, artifact loading, and pure batched inference.

A new function is one subclass of :class:`Function` in its own package; ``docs/functions.md`` walks through
adding one (contract, registration, golden file, manifests, running it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from functions.generation.engine import GenerationEngine
    from functions.generation.limits import EngineLimits
    from functions.generation.observer import EngineObserver

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """A declared input or output: v2 name, datatype and shape (-1 for a variable dimension).

    The first dimension is always the batch dimension; requests are merged and split along it.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_metadata(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def describe(self) -> str:
        return f"{self.name} {self.datatype}{list(self.shape)}"


@dataclass(frozen=True)
class BatchingDefaults:
    """A function's own batching defaults; settings and flags may override them."""

    max_batch_size: int = 32
    max_delay_ms: float = 5.0
    max_queue: int = 256


@dataclass(frozen=True)
class Tolerance:
    """How far a version's outputs may stray from the golden ones: ``|a - e| <= atol + rtol * |e|``."""

    atol: float = 0.0
    rtol: float = 0.0


class Function(ABC):
    """A model as wakeserve serves it: load artifacts, then tensors in and tensors out.

    ``infer`` receives every declared input with the batch dimension first and returns every declared output
    with the same batch size. It runs on a worker thread, never on the event loop. ``check`` runs on the
    event loop before a request joins a batch, so per-request problems are answered alone with a 400.
    A subclass is constructed without arguments; ``load`` does the expensive work.
    """

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batching: BatchingDefaults = BatchingDefaults()
    version: str = "1"
    # Exact by default: a function whose outputs move with threads or CPUs widens it.
    golden_tolerance: Tolerance = Tolerance()

    @abstractmethod
    def load(self, artifacts: Path | None) -> None:
        """Load weights from a resolved local directory (None: the function's packaged default)."""

    @abstractmethod
    def infer(self, inputs: Tensors) -> Tensors:
        """Batched, pure inference."""

    @abstractmethod
    def warmup_inputs(self) -> Tensors:
        """A small valid batch used once before the replica reports ready."""

    def check(self, inputs: Tensors) -> None:  # noqa: B027 - optional hook
        """Reject a request whose tensors are well-formed but whose values the model cannot take."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free what ``load`` started (threads, engines) when this version is released."""

    def golden_inputs(self) -> list[Tensors]:
        """Batches whose outputs, recorded from the packaged model, every later version must reproduce."""
        return [self.warmup_inputs()]


class GenerativeFunction(Function):
    """A function that also generates text token by token through a :class:`GenerationEngine`.

    The replica calls ``configure`` before ``load``; ``load`` builds :attr:`engine`. The OpenAI routes and
    the v2 generate extension serve every generative function (``docs/generation.md``).
    """

    engine: GenerationEngine | None = None
    limits: EngineLimits | None = None  # None: the engine's defaults
    observer: EngineObserver | None = None
    cache_dir: Path | None = None  # None: ~/.cache/wakeserve/models/.converted

    def configure(self, limits: EngineLimits, observer: EngineObserver | None, cache_dir: Path | None) -> None:
        """Engine bounds, where its metrics go, and where converted checkpoints are cached."""
        self.limits, self.observer, self.cache_dir = limits, observer, cache_dir

    def require_engine(self) -> GenerationEngine:
        if self.engine is None:
            raise RuntimeError(f"{self.name} is not loaded")
        return self.engine

    def close(self) -> None:
        """Stop the engine's thread (the version is being released)."""
        if self.engine is not None:
            self.engine.close()
