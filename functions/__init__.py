"""Predictors. ``contract.py`` says what a function is, ``catalog.py`` registers it, one folder per function.

The machinery every function shares lives in subpackages named for what they do: ``serving/`` (the one
``kserve.Model``, v2 transports, batching), ``hotswap/`` (slots, gates, control API, watch mode) and
``text/`` (the sentence encoder and text tensors used by the text functions).
"""
