"""The generator's raw ceiling, in a process of its own: ``model.generate`` on the converted checkpoint, greedy,
every sequence exactly ``--new-tokens`` long, static batches of distinct chat prompts (left-padded), and the
prefill time of one prompt alone. Writes one JSON document to ``--out``.

    python -m bench.generate_raw --out raw.json [--batches 1 8 16] [--new-tokens 64] [--repeats 3] [--threads 2]

The prompts are :func:`user_text`'s, the same the served benchmark sends, so both sides see the same lengths.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

TOPICS = [
    "tides",
    "compost",
    "volcanoes",
    "bread yeast",
    "honeybees",
    "glaciers",
    "solar panels",
    "octopuses",
    "lighthouses",
    "coffee roasting",
    "migrating birds",
    "rainbows",
    "bicycle gears",
    "coral reefs",
    "paper making",
    "thunderstorms",
    "sourdough",
    "river deltas",
    "wind turbines",
    "chess openings",
]
CONVERTED = Path.home() / ".cache" / "wakeserve" / "models" / ".converted"


def user_text(i: int) -> str:
    """The ``i``-th user message: distinct for every ``i``, about forty tokens once the chat template wraps it."""
    return f"Request {i}: in two short sentences, tell me something surprising about {TOPICS[i % len(TOPICS)]}."


def measure(batches: list[int], new_tokens: int, repeats: int, prefill_repeats: int, threads: int) -> dict[str, Any]:
    import torch

    from functions.generation.causal_lm import CausalLM
    from functions.generation.schema import Message
    from functions.generator.artifact import packaged_checkpoint

    torch.set_num_threads(threads)
    lm = CausalLM(packaged_checkpoint(CONVERTED))
    lm.tokenizer.padding_side = "left"
    prompts = [lm.encode_chat([Message(role="user", content=user_text(i))]) for i in range(max(batches))]

    def generate(batch: int, tokens: int = new_tokens) -> float:
        width = max(len(p) for p in prompts[:batch])
        ids = torch.full((batch, width), lm.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(batch, width, dtype=torch.long)
        for row, prompt in enumerate(prompts[:batch]):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        started = time.perf_counter()
        with torch.inference_mode():
            out = lm.model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                pad_token_id=lm.tokenizer.pad_token_id,
            )
        elapsed = time.perf_counter() - started
        if out.shape[1] - width != tokens:
            raise RuntimeError(f"generate made {out.shape[1] - width} tokens, not {tokens}")
        return batch * tokens / elapsed

    rates: dict[str, Any] = {}
    for batch in batches:
        generate(batch, tokens=8)  # warm: the first call at a batch size allocates; a few steps suffice
        runs = [generate(batch) for _ in range(repeats)]
        rates[f"batch_{batch}"] = {"tokens_per_s": statistics.median(runs), "runs": runs}

    lm.prefill([prompts[0]])
    prefill = []
    for _ in range(prefill_repeats):
        started = time.perf_counter()
        lm.prefill([prompts[0]])
        prefill.append(time.perf_counter() - started)
    lengths = [len(p) for p in prompts]
    return {
        "new_tokens": new_tokens,
        "prompt_tokens": {"min": min(lengths), "max": max(lengths), "mean": statistics.fmean(lengths)},
        "throughput": rates,
        "prefill_ms": statistics.median(prefill) * 1000,
        "threads": threads,
        "prefill_runs_ms": [p * 1000 for p in prefill],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prefill-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    report = measure(args.batches, args.new_tokens, args.repeats, args.prefill_repeats, args.threads)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
