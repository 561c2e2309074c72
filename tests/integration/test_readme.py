"""The README's quick start, command by command, as a new user runs it: a fresh shell beside ``wakeserve up``.

The commands come from README.md itself: the fenced ``sh`` block after "From another terminal:". ``make up``
is replaced by a real ``wakeserve up`` of the repository's manifests on free ports. Every command runs in a
clean environment (no ``AWS_*``, no ``WAKESERVE_*`` but ``WAKESERVE_STATE_DIR``, which says where that ``up``
keeps its context), so each one has to find the running system by itself.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from core.processes import free_port
from tests.support.up import REPO, UpProcess, start_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]
README = REPO / "README.md"
DEFAULT_GATEWAY = "127.0.0.1:8080"
TIMEOUTS = {"curl": 300, "curl-stream": 300, "post": 300, "status": 60, "rollout": 300}


def fenced_block_after(text: str, marker: str) -> str:
    """The first ```sh block after the line holding ``marker``."""
    after = text[text.index(marker) :]
    match = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert match, f"no sh block after {marker!r} in README.md"
    return match.group(1)


def commands(block: str) -> list[list[str]]:
    """Shell lines (continuations joined, comments dropped) as argv lists."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def quick_start() -> list[list[str]]:
    return commands(fenced_block_after(README.read_text(), "From another terminal:"))


def name(argv: list[str]) -> str:
    if argv[0] == "curl":
        return "curl-stream" if any("/openai/" in arg for arg in argv) else "curl"
    return argv[1]


def for_this_run(argv: list[str], gateway: str) -> list[str]:
    """The README's command with the gateway of this run, and this interpreter for ``.venv/bin/wakeserve``."""
    argv = [arg.replace(DEFAULT_GATEWAY, gateway) for arg in argv]
    if argv[0].endswith("bin/wakeserve"):
        return [sys.executable, "-m", "wakeserve", *argv[1:]]
    return argv


def clean_env(state_dir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WAKESERVE_"))}
    return {**env, "WAKESERVE_STATE_DIR": str(state_dir)} if state_dir else env


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    setup = fenced_block_after(README.read_text(), "## Set up and run")
    assert any(argv[:2] == ["make", "up"] for argv in commands(setup))
    # The session's placeholder AWS_* variables stay out of `up` too: it must bring its own.
    with pytest.MonkeyPatch.context() as mp:
        for variable in [n for n in os.environ if n.startswith(("AWS_", "WAKESERVE_"))]:
            mp.delenv(variable)
        process = start_up(tmp_path_factory.mktemp("readme"), manifests=REPO / "manifests" / "base", timeout=120)
    yield process
    process.process.stop(60)
    assert not (process.state_dir / "context.json").exists()


def run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else str(exc.stdout or "")
        pytest.fail(f"{shlex.join(argv[2:])} did not finish within {timeout:.0f}s; last output:\n{out[-1500:]}")


def check_curl(out: str) -> None:
    outputs = {o["name"]: o for o in orjson.loads(out)["outputs"]}
    assert outputs["label"]["data"] == ["shipping", "billing"]
    assert outputs["probabilities"]["shape"] == [2, 5]


def check_stream(out: str) -> None:
    events = [block for block in out.split("\n\n") if block]
    data = [e.removeprefix("data: ") for e in events if e.startswith("data: ")]
    assert all(e.startswith(("data: ", ": ")) for e in events), out[:500]
    assert data[-1] == "[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert "Paris" in text and chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def check_post(out: str) -> None:
    posted_line, result_text = out.split("\n", 1)
    posted = orjson.loads(posted_line)
    assert posted["dataref"].startswith("s3://wakeserve-payloads/requests/")
    result = orjson.loads(result_text)
    assert result["type"] == "dev.wakeserve.inference.result" and result["requestid"] == posted["posted"]
    (embedding,) = result["data"]["outputs"]
    assert embedding["name"] == "embedding" and embedding["shape"] == [1, 384]


def check_status(out: str) -> None:
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["function", "replicas", "ready"]
    by_name = {row.split()[0]: row.split() for row in rows}
    assert set(by_name) == {"classifier", "embedder", "generator"}
    assert "None" not in out
    assert all(int(by_name[f][6]) >= 1 for f in by_name)  # each woke once


def check_rollout(out: str) -> None:
    assert "rollout to v1b: promoted" in out, out[-2000:]


CHECKS = {
    "curl": check_curl,
    "curl-stream": check_stream,
    "post": check_post,
    "status": check_status,
    "rollout": check_rollout,
}


def test_the_quick_start_names_the_commands_checked_here():
    assert [name(argv) for argv in quick_start()] == ["curl", "curl-stream", "post", "status", "rollout"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("argv", quick_start(), ids=name)
def test_quick_start_command(up: UpProcess, argv: list[str]) -> None:
    if argv[0] == "curl" and shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    done = run(for_this_run(argv, up.url.removeprefix("http://")), clean_env(up.state_dir), TIMEOUTS[name(argv)])
    assert done.returncode == 0, f"{shlex.join(argv)}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr
    CHECKS[name(argv)](done.stdout)


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["post", "embedder", "--text", "hello", "--wait"], ["no S3 credentials", "start `wakeserve up`"]),
        (["status", "--url", "http://127.0.0.1:{port}"], ["cannot reach the gateway at http://127.0.0.1:{port}"]),
        (["results", "--kafka-bootstrap", "127.0.0.1:{port}"], ["cannot reach Kafka at 127.0.0.1:{port}"]),
    ],
    ids=["post-without-up", "status-unreachable", "results-unreachable"],
)
def test_unreachable_endpoint_is_one_line_without_traceback(tmp_path: Path, argv: list[str], fragments: list[str]):
    port = str(free_port())  # nothing listens there
    argv = [arg.replace("{port}", port) for arg in argv]
    done = run([sys.executable, "-m", "wakeserve", *argv], clean_env(tmp_path), 60)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"wakeserve {argv[0]}: ")
    for fragment in fragments:
        assert fragment.replace("{port}", port) in line
    assert done.stdout == ""
