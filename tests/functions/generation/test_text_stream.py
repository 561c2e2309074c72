"""TextStream: deltas that never show a stop string, hold back what may still become one, and add up to the text."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from functions.generation.text_stream import INCOMPLETE, TextStream

# Two halves of one multibyte character: the first alone decodes to U+FFFD, as a byte-level tokenizer would.
HEAD, TAIL = "\x01", "\x02"


def decoder(pieces: list[str]) -> tuple[list[int], Callable[[list[int]], str]]:
    """Token ids for ``pieces`` and a decode that joins them, completing or marking split characters."""

    def decode(ids: list[int]) -> str:
        return "".join(pieces[i] for i in ids).replace(HEAD + TAIL, "é").replace(HEAD, INCOMPLETE)

    return list(range(len(pieces))), decode


def run(pieces: list[str], stops: list[str]) -> tuple[TextStream, list[str]]:
    """Push every piece until the stream stops, as the engine does; the deltas of each push."""
    ids, decode = decoder(pieces)
    stream = TextStream(decode, stops)
    deltas = []
    for token in ids:
        deltas.append(stream.push(token))
        if stream.stopped:
            break
    return stream, deltas


CASES = [
    # (pieces, stops, deltas per push, flush, stopped)
    pytest.param(["Hel", "lo", " world"], [], ["Hel", "lo", " world"], "", False, id="no-stops-release-at-once"),
    pytest.param(["Hel", "lo"], [""], ["Hel", "lo"], "", False, id="empty-stop-ignored"),
    pytest.param(["a", "STOP", "b"], ["STOP"], ["a", ""], "", True, id="stop-in-one-token"),
    pytest.param(["ab", "<e", "nd>", "x"], ["<end>"], ["ab", "", ""], "", True, id="stop-split-across-tokens"),
    pytest.param(["ab", "<e", "x"], ["<end>"], ["ab", "", "<ex"], "", False, id="stop-prefix-released"),
    pytest.param(["ab", "<e"], ["<end>"], ["ab", ""], "<e", False, id="flush-returns-held-back"),
    pytest.param(["hello wor", "ld. Bye"], ["."], ["hello wor", "ld"], "", True, id="text-before-stop-in-token"),
    pytest.param(["x ", "y AB z CD"], ["CD", "AB"], ["x ", "y "], "", True, id="earliest-stop-wins"),
    pytest.param(["a", "b", "a", "b", "c"], ["abc"], ["", "", "ab", "", ""], "", True, id="overlapping-prefixes"),
    pytest.param(["a\n", "\nb"], ["\n\n"], ["a", ""], "", True, id="stop-starts-in-held-text"),
    pytest.param(["ab", "c"], ["bcd", "c"], ["a", "b"], "", True, id="shorter-stop-ends-longer-hold"),
    pytest.param(["caf", HEAD, TAIL, " ok"], [], ["caf", "", "é", " ok"], "", False, id="split-char-held"),
    pytest.param(["caf", HEAD], [], ["caf", ""], INCOMPLETE, False, id="split-char-flushed-as-is"),
    pytest.param(["x", HEAD, TAIL + "<e", "nd>"], ["<end>"], ["x", "", "é", ""], "", True, id="split-char-then-stop"),
]


@pytest.mark.parametrize(("pieces", "stops", "deltas", "rest", "stopped"), CASES)
def test_deltas_per_token(pieces: list[str], stops: list[str], deltas: list[str], rest: str, stopped: bool) -> None:
    stream, seen = run(pieces, stops)
    assert seen == deltas
    assert stream.stopped is stopped
    assert stream.flush() == rest
    assert stream.flush() == ""


@pytest.mark.parametrize(("pieces", "stops", "deltas", "rest", "stopped"), CASES)
def test_deltas_add_up_to_the_text_before_the_first_stop(
    pieces: list[str], stops: list[str], deltas: list[str], rest: str, stopped: bool
) -> None:
    stream, seen = run(pieces, stops)
    sent = "".join(seen) + stream.flush()
    _, decode = decoder(pieces)
    full = decode(list(range(len(pieces))))
    cuts = [full.find(s) for s in stops if s and s in full]
    assert sent == (full[: min(cuts)] if cuts else full)
    for stop in filter(None, stops):
        assert all(stop not in delta for delta in seen)
        assert stop not in sent


def test_stop_completed_by_a_token_ending_in_a_split_character_never_reaches_the_client() -> None:
    # The sequence ends (length or end of sequence) right after the token that completes the stop.
    stream, seen = run(["a<en", "d>" + HEAD], ["<end>"])
    sent = "".join(seen) + stream.flush()
    assert sent == "a"
