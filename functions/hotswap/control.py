"""The predictor's control API for hot swaps: load a candidate, show both slots and gate results, set the
canary share, promote, abort, probe; and per-version request statistics for the rollout controller.

    GET  /wakeserve/models/{name}/slots            both slots, gate verdicts, canary share, recent swaps
    POST /wakeserve/models/{name}/slots            {"model_uri", "version", "skip_gates", "new_contract",
                                                    "promote"} → 202, loading in the background
    POST /wakeserve/models/{name}/slots/promote    the gated candidate becomes active → 200
    POST /wakeserve/models/{name}/slots/abort      drop the candidate → 200
    POST /wakeserve/models/{name}/slots/canary     {"percent": 0..100} of new requests to the candidate
    POST /wakeserve/models/{name}/slots/probe      {"rounds": 1..50} golden calls on each slot, interleaved
    GET  /wakeserve/models/{name}/stats?after=N    per-version counters and latency samples after sequence N,
                                                    the versions in both slots and the canary share

Every body and answer is a model of :mod:`functions.hotswap.documents`. The routes belong on the replica's
admin listener (:mod:`functions.serving.admin`), never on the inference port; a candidate is held to the
replica's :class:`~functions.hotswap.authority.Authority`, and every action is reported to ``audit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from core.errors import InvalidInputError, UnknownModelError
from functions.hotswap.authority import Authority
from functions.hotswap.candidate import CandidateSpec
from functions.hotswap.documents import (
    CanaryRequest,
    CandidateSlotDocument,
    ProbeRequest,
    SlotDocument,
    SlotState,
    StatsDocument,
    parse,
)
from functions.hotswap.probe import probe
from functions.serving.runtime import FunctionModel


async def _json(request: Request) -> Any:
    body = await request.body()
    if not body:
        return {}
    if len(body) > 64 * 1024:
        raise InvalidInputError("control request body is over 64 KiB")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"body is not JSON: {exc}") from exc


_CANARY = 'expected {"percent": a number from 0 to 100}'

Audit = Callable[[Request, str, str, str], None]  # (request, action, model, what it was about)


def _about(slot: SlotDocument | None, fallback: str = "") -> str:
    return fallback if slot is None else f"version {slot.version} digest {slot.digest or '-'}"


def add_control_routes(
    app: FastAPI,
    models: dict[str, FunctionModel],
    authorities: dict[str, Authority],
    audit: Audit,
) -> None:
    """The control API of ``models`` on ``app``; candidates checked by ``authorities`` (by model name)."""

    def model(name: str) -> FunctionModel:
        found = models.get(name)
        if found is None:
            raise UnknownModelError(f"model {name!r} is not served here")
        return found

    def slots_json(m: FunctionModel) -> dict[str, Any]:
        return m.lifecycle.describe().model_dump(mode="json")

    async def slots(name: str) -> dict[str, Any]:
        return slots_json(model(name))

    async def load(name: str, request: Request) -> JSONResponse:
        m = model(name)
        spec = CandidateSpec.from_json(await _json(request))
        wanted = f"version {spec.version or '-'} from {spec.model_uri or 'the active source'}"
        skips = f", skipping {','.join(sorted(spec.skipping))}" if spec.skipping else ""
        try:
            authorities[name].check(spec)
        except Exception as exc:
            audit(request, "load refused", name, f"{wanted}{skips}: {exc}")
            raise
        m.lifecycle.load_candidate(spec)
        audit(request, "load", name, wanted + skips)
        return JSONResponse(slots_json(m), status_code=202)

    async def promote(name: str, request: Request) -> dict[str, Any]:
        m = model(name)
        promoted = m.lifecycle.promote()
        audit(request, "promote", name, _about(promoted.describe()))
        return slots_json(m)

    async def abort(name: str, request: Request) -> dict[str, Any]:
        m = model(name)
        dropped = m.lifecycle.abort("aborted through the control API")
        audit(request, "abort", name, _about(None if dropped is None else dropped.describe(), "no candidate"))
        return slots_json(m)

    async def canary(name: str, request: Request) -> dict[str, Any]:
        m = model(name)
        body = parse(CanaryRequest, await _json(request), {"": _CANARY, "percent": _CANARY})
        m.lifecycle.set_canary(body.percent)
        candidate = m.lifecycle.candidate
        audit(request, f"canary {body.percent:g}%", name, _about(None if candidate is None else candidate.describe()))
        return slots_json(m)

    async def probe_slots(name: str, request: Request) -> dict[str, Any]:
        m = model(name)
        body = parse(ProbeRequest, await _json(request), {"rounds": "rounds must be a whole number from 1 to 50"})
        return (await probe(m.lifecycle, body.rounds)).model_dump(mode="json")

    async def stats(name: str, after: int = 0) -> dict[str, Any]:
        m = model(name)
        candidate = m.lifecycle.candidate
        doc = StatsDocument(
            last=m.stats.last,
            versions=m.stats.versions(),
            samples=m.stats.since(after),
            active=m.version,
            active_digest=None if m.lifecycle.active is None else m.lifecycle.active.digest,
            candidate=candidate.version if candidate is not None and candidate.state is SlotState.READY else None,
            candidate_slot=None
            if candidate is None
            else CandidateSlotDocument(
                version=candidate.version, state=candidate.state, error=candidate.error, digest=candidate.digest
            ),
            canary_percent=m.lifecycle.canary.percent,
        )
        return doc.model_dump(mode="json")

    base = "/wakeserve/models/{name}"
    app.add_api_route(base + "/slots", slots, methods=["GET"])
    app.add_api_route(base + "/slots", load, methods=["POST"])
    app.add_api_route(base + "/slots/promote", promote, methods=["POST"])
    app.add_api_route(base + "/slots/abort", abort, methods=["POST"])
    app.add_api_route(base + "/slots/canary", canary, methods=["POST"])
    app.add_api_route(base + "/slots/probe", probe_slots, methods=["POST"])
    app.add_api_route(base + "/stats", stats, methods=["GET"])
