"""The predictor's control API for hot swaps: load a candidate, show both slots and gate results, set the
canary share, promote, abort; and per-version request statistics for the rollout controller.

    GET  /wakeserve/models/{name}/slots            both slots, gate verdicts, canary share, recent swaps
    POST /wakeserve/models/{name}/slots            {"model_uri", "version", "skip_gates", "new_contract",
                                                    "promote"} → 202, loading in the background
    POST /wakeserve/models/{name}/slots/promote    the gated candidate becomes active → 200
    POST /wakeserve/models/{name}/slots/abort      drop the candidate → 200
    POST /wakeserve/models/{name}/slots/canary     {"percent": 0..100} of new requests to the candidate
    GET  /wakeserve/models/{name}/stats?after=N    per-version counters and latency samples after sequence N,
                                                    the versions in both slots and the canary share
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from core.errors import InvalidInputError, UnknownModelError
from functions.hotswap.lifecycle import CandidateSpec
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


def add_control_routes(app: FastAPI, models: dict[str, FunctionModel]) -> None:
    def model(name: str) -> FunctionModel:
        found = models.get(name)
        if found is None:
            raise UnknownModelError(f"model {name!r} is not served here")
        return found

    async def slots(name: str) -> dict[str, Any]:
        return model(name).lifecycle.describe()

    async def load(name: str, request: Request) -> JSONResponse:
        lifecycle = model(name).lifecycle
        lifecycle.load_candidate(CandidateSpec.from_json(await _json(request)))
        return JSONResponse(lifecycle.describe(), status_code=202)

    async def promote(name: str) -> dict[str, Any]:
        lifecycle = model(name).lifecycle
        lifecycle.promote()
        return lifecycle.describe()

    async def abort(name: str) -> dict[str, Any]:
        lifecycle = model(name).lifecycle
        lifecycle.abort("aborted through the control API")
        return lifecycle.describe()

    async def canary(name: str, request: Request) -> dict[str, Any]:
        lifecycle = model(name).lifecycle
        doc = await _json(request)
        percent = doc.get("percent") if isinstance(doc, dict) else None
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
            raise InvalidInputError('expected {"percent": a number from 0 to 100}')
        lifecycle.set_canary(float(percent))
        return lifecycle.describe()

    async def stats(name: str, after: int = 0) -> dict[str, Any]:
        m = model(name)
        doc = m.stats.to_json(after)
        doc["active"] = m.version
        candidate = m.lifecycle.candidate
        doc["candidate"] = candidate.version if candidate is not None and candidate.state == "ready" else None
        doc["candidate_slot"] = (
            None
            if candidate is None
            else {"version": candidate.version, "state": candidate.state, "error": candidate.error}
        )
        doc["canary_percent"] = m.lifecycle.canary.percent
        return doc

    base = "/wakeserve/models/{name}"
    app.add_api_route(base + "/slots", slots, methods=["GET"])
    app.add_api_route(base + "/slots", load, methods=["POST"])
    app.add_api_route(base + "/slots/promote", promote, methods=["POST"])
    app.add_api_route(base + "/slots/abort", abort, methods=["POST"])
    app.add_api_route(base + "/slots/canary", canary, methods=["POST"])
    app.add_api_route(base + "/stats", stats, methods=["GET"])
