"""Token ids to text deltas, incrementally, with stop strings.

Text that could still turn out to be the start of a stop string, or an incomplete UTF-8 character, is held
back until the next token decides it; a stop string ends the sequence and never reaches the client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

INCOMPLETE = "\ufffd"


class TextStream:
    """One sequence's text: ``push`` each new token id, get the delta that is now safe to send."""

    def __init__(self, decode: Callable[[list[int]], str], stops: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stops = tuple(s for s in stops if s)
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0
        self.stopped = False

    def push(self, token_id: int) -> str:
        """The delta that ``token_id`` makes safe to send; sets ``stopped`` when a stop string appeared."""
        self.ids.append(token_id)
        self.text = self._decode(self.ids)
        cut = self._first_stop()
        if cut is not None:
            self.stopped = True
            return self._advance(cut)
        if self.text.endswith(INCOMPLETE):
            return ""
        return self._advance(len(self.text) - self._held_back())

    def flush(self) -> str:
        """What is left to send when the sequence ends for another reason (length, end of sequence)."""
        if self.stopped:
            return ""
        return self._advance(len(self.text))

    def _advance(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        delta, self.sent = self.text[self.sent : upto], upto
        return delta

    def _first_stop(self) -> int | None:
        found = [i for i in (self.text.find(s, max(0, self.sent - len(s) + 1)) for s in self._stops) if i >= 0]
        return min(found) if found else None

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        longest = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(self.text)), longest, -1):
                if self.text.endswith(stop[:k]):
                    longest = k
                    break
        return longest
