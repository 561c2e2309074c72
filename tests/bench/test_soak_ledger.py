from __future__ import annotations

from typing import Any

import pytest

from bench.soak_ledger import Fault, Ledger

# (id, kind, sent_at, accepted, error, [(answered_at, error_result)...])
Row = tuple[str, str, float, bool, str | None, list[tuple[float, bool]]]


def ledger_of(rows: list[Row]) -> Ledger:
    ledger = Ledger()
    for request_id, kind, at, accepted, error, answers in rows:
        ledger.sent(request_id, kind, at)
        if accepted:
            ledger.accepted(request_id)
        if error:
            ledger.failed(request_id, error)
        for answered_at, is_error in answers:
            ledger.answered(request_id, answered_at, error=is_error)
    return ledger


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            [("a", "event", 11, True, None, [(12, False)]), ("b", "sync", 12, False, None, [(12.5, False)])],
            {"sent": 2, "answered": 2, "failed_clear": 0, "lost": [], "duplicated": [], "recover_s": 2.0},
            id="all answered",
        ),
        pytest.param(
            [("a", "event", 11, True, None, [])],
            {"sent": 1, "answered": 0, "lost": ["a"], "recover_s": None},
            id="accepted without a result is lost",
        ),
        pytest.param(
            [("a", "event", 11, False, "503 broker unavailable", []), ("b", "event", 13, True, None, [(15, False)])],
            {"failed_clear": 1, "lost": [], "recover_s": 5.0},
            id="refused with a reason, then recovered",
        ),
        pytest.param(
            [("a", "event", 11, True, None, [(12, False), (14, False)])],
            {"answered": 1, "duplicated": ["a"]},
            id="two results are a duplicate",
        ),
        pytest.param(
            [("a", "event", 11, True, None, [(12, True)])],
            {"answered": 1, "error_results": 1, "lost": []},
            id="an error result answers",
        ),
        pytest.param(
            [("a", "event", 11, False, None, [])],
            {"unresolved": ["a"], "lost": []},
            id="never acknowledged either way",
        ),
    ],
)
def test_one_fault_window(rows: list[Row], expected: dict[str, Any]) -> None:
    (baseline, fault) = ledger_of(rows).tally([Fault("broker restart", 10.0)], end=100.0)
    assert baseline["sent"] == 0
    assert fault["fault"] == "broker restart"
    assert {k: fault[k] for k in expected} == expected


def test_requests_fall_into_the_window_they_were_sent_in() -> None:
    ledger = ledger_of(
        [
            ("early", "sync", 1, False, None, [(1.1, False)]),
            ("first", "event", 10, True, None, []),
            ("second", "event", 20, True, None, [(21, False)]),
            ("late", "event", 99, True, None, [(99.5, False)]),
        ]
    )
    rows = ledger.tally([Fault("b", 20.0), Fault("a", 10.0)], end=100.0)
    assert [(r["fault"], r["sent"], r["lost"]) for r in rows] == [
        ("baseline", 1, []),
        ("a", 1, ["first"]),
        ("b", 2, []),
    ]
    assert ledger.accepted_events() == {"first", "second", "late"}


def test_answers_for_unknown_ids_are_ignored() -> None:
    ledger = Ledger()
    ledger.answered("stranger", 1.0)
    assert ledger.requests == {}
