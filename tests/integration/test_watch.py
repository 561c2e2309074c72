"""Watch mode through ``wakeserve up --watch``: an edit to a function's source is served by the next requests,
with none lost. The replicas import ``functions`` from a copy of the package, which the test edits."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.load import EchoLoad
from tests.support.up import REPO, UpProcess, start_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("src")
    shutil.copytree(REPO / "functions", root / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Iterator[UpProcess]:
    process = start_up(
        tmp_path_factory.mktemp("watch"), "--functions", "echo", "--watch", echo_min_replicas=2, cwd=source
    )
    yield process
    process.process.stop(60)


def test_an_edited_function_is_served_by_the_next_requests_with_none_lost(up: UpProcess, source: Path) -> None:
    status = up.wait_for("two echo replicas ready", lambda s: s["functions"]["echo"]["ready"] >= 2, timeout=90)
    function = source / "functions" / "echo" / "function.py"
    before = up.wait_for(
        "versions observed",
        lambda s: all(p["version"] for p in s["functions"]["echo"]["pods"] if p["state"] == "ready"),
    )["functions"]["echo"]["pods"]
    old = {p["version"] for p in before}
    assert len(old) == 1 and next(iter(old)).startswith("1+src."), old
    pids = {p["pid"] for p in status["functions"]["echo"]["pods"]}

    with EchoLoad(up.url, up.headers, event_every_s=0) as load:
        time.sleep(1.0)
        function.write_text(function.read_text().replace('version = "1"', 'version = "edited"'))
        edited_at = time.monotonic()
        up.wait_for(
            "every replica on the edited source",
            lambda s: all(
                str(p["version"]).startswith("edited+src.")
                for p in s["functions"]["echo"]["pods"]
                if p["state"] == "ready"
            ),
            timeout=30,
        )
        switched_at = time.monotonic()
        time.sleep(1.0)
    answers = load.snapshot()
    assert len(answers) > 50
    assert [a for a in answers if a.status != 200 or not a.correct] == []
    versions = {a.version for a in answers}
    assert old & versions and any(str(v).startswith("edited+src.") for v in versions)
    assert all(str(a.version).startswith("edited+src.") for a in answers if a.sent > switched_at + 0.5)
    assert switched_at - edited_at < 10
    # No restart: the same processes serve the new code.
    after = up.status()["functions"]["echo"]["pods"]
    assert {p["pid"] for p in after} == pids
