"""How an event reaches a model: the interface, and the remote invoker that calls a v2 endpoint over HTTP.

The in-process invoker (calling the loaded model inside a replica) lives with the predictor runtime in
``functions/``; both satisfy :class:`Invoker`.
"""

from __future__ import annotations

from typing import Protocol

import httpx

from core.errors import (
    InvalidInputError,
    ModelError,
    PayloadTooLargeError,
    TransientError,
    UnknownModelError,
    WakeserveError,
)
from events.cloudevent import json_object


class Invoker(Protocol):
    """Runs one v2 inference request (JSON bytes) and returns the v2 response (JSON bytes) and model version."""

    async def infer(self, function: str, body: bytes, priority: int) -> tuple[bytes, str]: ...


_BY_STATUS: dict[int, type[WakeserveError]] = {
    400: InvalidInputError,
    404: UnknownModelError,
    413: PayloadTooLargeError,
    422: InvalidInputError,
}


class RemoteInvoker:
    """Calls ``POST {target}/v2/models/{function}/infer`` (a Knative- or KEDA-served predictor)."""

    def __init__(self, target_url: str, timeout: float = 60.0, max_connections: int = 64) -> None:
        self.client = httpx.AsyncClient(
            base_url=target_url.rstrip("/"),
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections),
        )

    async def infer(self, function: str, body: bytes, priority: int) -> tuple[bytes, str]:
        try:
            response = await self.client.post(
                f"/v2/models/{function}/infer", content=body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"model server unreachable: {type(exc).__name__}: {exc}") from exc
        doc = json_object(response.content)
        if response.status_code == 200:
            if doc is None:
                raise ModelError("model server answered 200 with a body that is not a v2 inference response")
            return response.content, str(doc.get("model_version") or "")
        reason = str(doc.get("error", response.text)) if doc is not None else response.text[:500]
        if response.status_code in (429, 502, 503, 504):
            raise TransientError(f"model server answered {response.status_code}: {reason}")
        raise _BY_STATUS.get(response.status_code, ModelError)(
            f"model server answered {response.status_code}: {reason}"
        )

    async def close(self) -> None:
        await self.client.aclose()
