"""Generation shared by every generative function: the request schema, sampling, the batching engine."""
