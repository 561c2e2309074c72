"""The functions this build serves, by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from functions.contract import Function


def _embedder(encoder: Path | None) -> Function:
    from functions.embedder.function import Embedder

    return Embedder()


def _classifier(encoder: Path | None) -> Function:
    from functions.classifier.function import Classifier

    return Classifier(encoder_checkpoint=encoder)


def _echo(encoder: Path | None) -> Function:
    from functions.echo.function import Echo

    return Echo()


FUNCTIONS: dict[str, Callable[[Path | None], Function]] = {
    "embedder": _embedder,
    "classifier": _classifier,
    "echo": _echo,
}


def create(name: str, encoder: Path | None = None) -> Function:
    """A fresh, unloaded function; ``encoder`` is the resolved encoder checkpoint where one is used."""
    try:
        factory = FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}") from None
    return factory(encoder)
