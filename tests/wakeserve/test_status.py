"""The status table of ``wakeserve up``: one row per function, with the versions its replicas serve."""

from __future__ import annotations

import pytest

from wakeserve.status import COLUMNS, render_lines, render_table, versions


def function(pods, rollout=None, **extra):
    base = {"replicas": len(pods), "ready": len(pods), "inflight": 0, "held": 0, "lag": 0, "cold_starts": 1}
    return {**base, "pods": pods, "rollout": rollout, **extra}


@pytest.mark.parametrize(
    ("pods", "rollout", "expected"),
    [
        ([], None, "-"),
        ([{"version": None}], None, "-"),
        ([{"version": "v1"}, {"version": "v1"}], None, "v1:2"),
        ([{"version": "v2"}, {"version": "v1"}], {"rollout": None}, "v1:1 v2:1"),
        (
            [{"version": "v1"}, {"version": "v1"}],
            {"rollout": {"candidate": "v2", "percent": 25.0, "phase": "canary"}},
            "v1:2 -> v2 25% (canary)",
        ),
    ],
)
def test_versions_column(pods, rollout, expected):
    assert versions(function(pods, rollout)) == expected


def test_table_has_a_row_per_function_with_its_versions():
    status = {
        "functions": {
            "echo": function([{"version": "1"}], last_scale={"before": 0, "after": 1, "at": 90.0, "reason": "kpa"}),
            "classifier": function([]),
        }
    }
    lines = render_table(status, now=100.0).splitlines()
    assert lines[0].split() == [c for column in COLUMNS for c in column.split()]
    assert lines[1].split()[0] == "classifier" and lines[2].split()[0] == "echo"
    assert "1:1" in lines[2] and "0->1 10s ago (kpa)" in lines[2]


def test_nothing_measured_yet_is_a_dash_never_none():
    status = {"functions": {"echo": function([], lag=None, cold_starts=None, inflight=1.5)}}
    (row,) = render_table(status, now=0.0).splitlines()[1:]
    assert "None" not in row
    assert row.split()[1:8] == ["0", "0", "1.5", "0", "-", "-", "-"]


def test_plain_lines_name_each_column_for_logs_and_pipes():
    status = {"functions": {"echo": function([{"version": "1"}], lag=None), "classifier": function([])}}
    assert render_lines(status, now=0.0) == [
        "status: classifier replicas=0 ready=0 inflight=0 held=0 lag=0 cold_starts=1 versions=- last_scale_event=-",
        "status: echo replicas=1 ready=1 inflight=0 held=0 lag=- cold_starts=1 versions=1:1 last_scale_event=-",
    ]
