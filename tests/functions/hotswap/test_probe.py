"""Synthetic probes of both slots with the golden inputs, and the control API documents they travel in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.errors import ConflictError, InvalidInputError
from functions.contract import TensorSpec
from functions.echo.function import Echo
from functions.hotswap.candidate import CandidateSpec
from functions.hotswap.documents import CanaryRequest, ProbeDocument, StatsDocument, parse
from functions.hotswap.gates import GatePolicy
from functions.hotswap.probe import probe
from functions.serving.runtime import FunctionModel
from tests.functions.hotswap.test_lifecycle import artifact, model, request, settled, started

FAST = GatePolicy(latency_runs=3, latency_slack_s=1.0)


async def with_candidate(tmp_path: Path, **config: object) -> FunctionModel:
    m = await started(model(tmp_path, FAST))
    m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "v2", **config), skip_gates=frozenset()))
    await settled(m)
    assert m.lifecycle.candidate is not None and m.lifecycle.candidate.state == "ready"
    return m


def test_a_probe_calls_both_versions_in_turn_and_is_not_user_traffic(tmp_path: Path) -> None:
    async def scenario() -> tuple[ProbeDocument, int, int]:
        m = await with_candidate(tmp_path)
        await m.infer(request(1))
        before = m.stats.last
        doc = await probe(m.lifecycle, 4)
        after = m.stats.last
        await m.close()
        return doc, before, after

    doc, before, after = asyncio.run(scenario())
    assert [s.version for s in doc.samples] == ["1", "v2", "v2", "1", "1", "v2", "v2", "1"]
    assert all(s.ok and s.latency_s > 0 for s in doc.samples)
    assert after == before  # the replica's per-version statistics count user requests only


def test_a_failing_candidate_shows_in_the_probe_and_the_stable_one_does_not(tmp_path: Path) -> None:
    async def scenario() -> ProbeDocument:
        # Healthy through its warm-up and gates, failing every call after.
        m = await with_candidate(tmp_path, error_rate=1.0, healthy_calls=8)
        doc = await probe(m.lifecycle, 10)
        await m.close()
        return doc

    doc = asyncio.run(scenario())
    by_version = {v: [s.ok for s in doc.samples if s.version == v] for v in ("1", "v2")}
    assert all(by_version["1"]) and len(by_version["1"]) == 10
    assert by_version["v2"].count(False) >= 5


class Wider(Echo):
    inputs = (TensorSpec("x", "FP32", (-1, 8)),)


def test_a_probe_needs_a_gated_candidate(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = await started(model(tmp_path, FAST))
        try:
            with pytest.raises(ConflictError, match="no gated candidate"):
                await probe(m.lifecycle, 2)
        finally:
            await m.close()

    asyncio.run(scenario())


def test_a_candidate_with_new_inputs_is_not_probed_and_the_answer_says_why(tmp_path: Path) -> None:
    async def scenario() -> ProbeDocument:
        m = await started(model(tmp_path, FAST))
        m.lifecycle.make_function = lambda _reload: Wider()
        m.lifecycle.load_candidate(CandidateSpec(new_contract=True, skip_gates=frozenset({"golden"})))
        await settled(m)
        doc = await probe(m.lifecycle, 2)
        await m.close()
        return doc

    doc = asyncio.run(scenario())
    assert doc.samples == [] and doc.refused is not None and "declares new inputs" in doc.refused


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "expected a JSON object"),
        ({"colour": "blue"}, "unknown field(s) ['colour']"),
        ({"skip_gates": "golden"}, "skip_gates must be a list"),
        ({"skip_gates": ["speed"]}, "skip_gates must be a list drawn from"),
        ({"model_uri": ""}, "model_uri must be a non-empty string"),
        ({"version": 3}, "version must be a non-empty string"),
        ({"promote": "yes"}, "promote must be true or false"),
        ({"new_contract": 1}, "new_contract must be true or false"),
    ],
)
def test_candidate_requests_are_validated(body: object, problem: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        CandidateSpec.from_json(body)
    assert problem in str(caught.value)


def test_a_candidate_request_becomes_a_spec() -> None:
    body = {
        "model_uri": "s3://m/v2",
        "version": "v2",
        "skip_gates": ["latency"],
        "promote": True,
        "new_contract": False,
    }
    spec = CandidateSpec.from_json(body)
    assert spec == CandidateSpec(model_uri="s3://m/v2", version="v2", skip_gates=frozenset({"latency"}), promote=True)
    assert CandidateSpec.from_json({"skip_gates": None}) == CandidateSpec()


@pytest.mark.parametrize(
    ("body", "percent"),
    [({"percent": 5}, 5.0), ({"percent": 0}, 0.0), ({"percent": 100.0}, 100.0)]
    + [(b, None) for b in ({"percent": True}, {"percent": -1}, {"percent": 101}, {"percent": "5"}, {}, [5])],
)
def test_canary_requests_are_validated(body: object, percent: float | None) -> None:
    if percent is None:
        with pytest.raises(InvalidInputError, match="percent"):
            parse(CanaryRequest, body, {"": "expected percent", "percent": "expected percent"})
    else:
        assert parse(CanaryRequest, body, {}).percent == percent


def test_the_stats_document_reads_what_a_replica_writes() -> None:
    wire = {
        "last": 7,
        "versions": {"1": {"requests": 6, "errors": 1}, "v2": {"requests": 1, "errors": 0}},
        "samples": [[6, "1", 0.0012, False], [7, "v2", 0.0009, True]],
        "active": "1",
        "active_digest": "packaged",
        "candidate": "v2",
        "candidate_slot": {"version": "v2", "state": "ready", "error": None, "digest": "3f2a9c1e5b7d0a42"},
        "canary_percent": 5.0,
    }
    doc = StatsDocument.model_validate(wire)
    assert doc.samples[1] == (7, "v2", 0.0009, True) and doc.candidate_slot is not None
    assert doc.candidate_slot.state == "ready" and not doc.candidate_slot.state.busy
    assert doc.model_dump(mode="json") == wire
