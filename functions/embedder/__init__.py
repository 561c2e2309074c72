"""The ``embedder`` function: sentence embeddings (FP32 [N, 384] for the default MiniLM)."""
