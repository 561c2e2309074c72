"""A tiny random Llama behind the real :class:`CausalLM` prefill and decode code, with a word tokenizer.

Token ``i`` is the word ``w{i}``; end-of-sequence ids decode to nothing, as special tokens do, so a text maps
back to its token ids. :class:`ScriptedLM` can hold decode steps at a gate and fail chosen ones, which makes the
order of events between the engine thread and a test deterministic.
"""

from __future__ import annotations

import threading

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicCache

from functions.generation.batch_cache import BatchCache
from functions.generation.causal_lm import CausalLM
from functions.generation.schema import Message

VOCAB = 64
EOS = 1
CONTEXT = 64
GATE_TIMEOUT_S = 20.0


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT,
    )
    return LlamaForCausalLM(config).float().eval()


def words(ids: list[int]) -> str:
    return " ".join(f"w{i}" for i in ids)


def ids_of(text: str) -> list[int]:
    return [int(word[1:]) for word in text.split()]


class WordLM(CausalLM):
    """The real model-facing half of :class:`CausalLM` over an in-memory model and a word tokenizer."""

    def __init__(self, model: LlamaForCausalLM) -> None:
        # CausalLM.__init__ reads a checkpoint directory; this model never was one.
        self.model = model
        self.eos_ids = frozenset({EOS})
        self.context_length = CONTEXT
        self.parameters = sum(p.numel() for p in model.parameters())

    def encode_chat(self, messages: list[Message]) -> list[int]:
        return ids_of(" ".join(m.content for m in messages))

    def encode_prompt(self, prompt: str) -> list[int]:
        return ids_of(prompt)

    def decode(self, ids: list[int]) -> str:
        return words([i for i in ids if i not in self.eos_ids])


class ScriptedLM(WordLM):
    """A :class:`WordLM` whose decode steps pass a gate (open unless :meth:`hold` closed it); steps and prefills
    can be made to fail."""

    def __init__(self, model: LlamaForCausalLM) -> None:
        super().__init__(model)
        self._cond = threading.Condition()
        self._permits: int | None = None  # None: every step passes
        self._blocked = False
        self.steps = 0
        self.fail_at: set[int] = set()
        self.poison: int | None = None  # a prompt holding this token fails its prefill
        self.prefilled: list[list[list[int]]] = []
        self.rows_per_step: list[int] = []

    def hold(self) -> None:
        """Stop the next decode step at the gate."""
        with self._cond:
            self._permits = 0

    def release(self, steps: int | None = None) -> None:
        """Let ``steps`` more decode steps pass (all of them when None)."""
        with self._cond:
            self._permits = steps
            self._cond.notify_all()

    def wait_blocked(self, step: int, timeout_s: float = GATE_TIMEOUT_S) -> None:
        """Until decode step ``step`` (counted from 1) waits at the gate."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._blocked and self.steps == step, timeout_s):
                raise TimeoutError(f"decode step {step} never reached the gate (at {self.steps})")

    def prefill(self, prompts: list[list[int]]) -> tuple[torch.Tensor, DynamicCache]:
        self.prefilled.append(prompts)
        if any(self.poison in prompt for prompt in prompts):
            raise RuntimeError("scripted failure of a prefill")
        return super().prefill(prompts)

    def decode_step(self, tokens: list[int], batch: BatchCache) -> torch.Tensor:
        with self._cond:
            self.steps += 1
            step = self.steps
            self.rows_per_step.append(len(tokens))
            self._blocked = True
            self._cond.notify_all()
            passed = self._cond.wait_for(lambda: self._permits is None or self._permits > 0, GATE_TIMEOUT_S)
            self._blocked = False
            if not passed:
                raise TimeoutError("the test never opened the gate")
            if self._permits is not None:
                self._permits -= 1
        if step in self.fail_at:
            raise RuntimeError(f"scripted failure of decode step {step}")
        return super().decode_step(tokens, batch)


def greedy_alone(lm: CausalLM, prompt: list[int], tokens: int) -> tuple[list[int], list[torch.Tensor]]:
    """``tokens`` greedy tokens of ``prompt`` decoded by itself, and the logits each was picked from."""
    logits, cache = lm.prefill([prompt])
    batch = BatchCache()
    batch.append(cache, [len(prompt)], [1])
    rows = [logits[0]]
    picked = [int(torch.argmax(logits[0]))]
    while len(picked) < tokens:
        rows.append(lm.decode_step([picked[-1]], batch)[0])
        picked.append(int(torch.argmax(rows[-1])))
    return picked, rows
