"""What the engine reports as it runs; :mod:`functions.generation.metrics` turns it into Prometheus series."""

from __future__ import annotations


class EngineObserver:
    """Called on the engine thread; every method must be cheap. The base class ignores everything."""

    def prompt(self, tokens: int) -> None:
        """A request's prompt was prefilled."""

    def generated(self, tokens: int) -> None:
        """Tokens were sampled."""

    def first_token(self, seconds: float) -> None:
        """Time from a request's arrival to its first token."""

    def inter_token(self, seconds: float) -> None:
        """Time between two tokens of one sequence."""

    def cancelled(self, saved_tokens: int) -> None:
        """A request was cancelled; ``saved_tokens`` of its budget will never be computed."""

    def late_tokens(self, tokens: int) -> None:
        """Tokens computed for cancelled sequences in the step during which the cancel arrived (never sent)."""


NoObserver = EngineObserver
