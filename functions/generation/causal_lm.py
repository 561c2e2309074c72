"""A transformers causal language model as the engine drives it: tokens in, next-token logits out."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.cache_utils import DynamicCache
from transformers.utils import logging as hf_logging

from functions.generation.batch_cache import BatchCache
from functions.generation.schema import Message


class CausalLM:
    """Tokenizer, chat template and model of one checkpoint directory (config, safetensors, tokenizer)."""

    def __init__(self, directory: Path) -> None:
        hf_logging.disable_progress_bar()  # a replica's log is for its own lines
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        config = self.model.generation_config
        eos = config.eos_token_id if config.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids = frozenset(eos if isinstance(eos, list) else [eos])
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.parameters = sum(p.numel() for p in self.model.parameters())

    def encode_chat(self, messages: list[Message]) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(
            [m.model_dump() for m in messages], add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(encoded["input_ids"])

    def encode_prompt(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    @torch.inference_mode()
    def prefill(self, prompts: list[list[int]]) -> tuple[torch.Tensor, DynamicCache]:
        """Run whole prompts together, left-padded: each one's last-position logits [prompts, vocabulary]
        and their cache (row ``i`` valid in its last ``len(prompts[i])`` columns)."""
        width = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), width, dtype=torch.long)
        mask = torch.zeros(len(prompts), width, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        cache = DynamicCache()
        if len(prompts) == 1:  # alone, exactly as ``generate`` computes it
            out = self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        else:
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        logits: torch.Tensor = out.logits[:, -1]
        return logits, cache

    @torch.inference_mode()
    def decode_step(self, tokens: list[int], batch: BatchCache) -> torch.Tensor:
        """One token per running row: their next-token logits, [rows, vocabulary]."""
        mask, positions = batch.step_inputs()
        out = self.model(
            input_ids=torch.tensor(tokens).unsqueeze(1),
            attention_mask=mask,
            position_ids=positions,
            cache=batch.cache,
            use_cache=True,
        )
        batch.advance()
        logits: torch.Tensor = out.logits[:, -1]
        return logits
