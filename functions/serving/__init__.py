"""The predictor runtime every function runs in: the ``kserve.Model``, v2 REST/gRPC, batching, metrics."""
