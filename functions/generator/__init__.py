"""The generator: an instruction-tuned causal language model, streamed token by token."""
