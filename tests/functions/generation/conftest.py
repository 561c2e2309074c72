from __future__ import annotations

from collections.abc import Iterator

import pytest
from transformers import LlamaForCausalLM

from functions.generation.engine import ContinuousBatchingEngine
from functions.generation.limits import EngineLimits
from functions.generation.observer import EngineObserver
from tests.functions.generation.engine_support import MakeEngine
from tests.functions.generation.tiny_lm import ScriptedLM, tiny_llama


@pytest.fixture(scope="session")
def tiny_model() -> LlamaForCausalLM:
    return tiny_llama()


@pytest.fixture
def make(tiny_model: LlamaForCausalLM) -> Iterator[MakeEngine]:
    """Engines over the tiny model, each with its own scripted wrapper; all closed at the end."""
    made: list[tuple[ContinuousBatchingEngine, ScriptedLM]] = []

    def build(
        limits: EngineLimits | None = None, observer: EngineObserver | None = None
    ) -> tuple[ContinuousBatchingEngine, ScriptedLM]:
        lm = ScriptedLM(tiny_model)
        made.append((ContinuousBatchingEngine(lm, limits or EngineLimits(), observer), lm))
        return made[-1]

    yield build
    for engine, lm in made:
        lm.release()
        engine.close()
