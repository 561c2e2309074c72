"""The in-process invoker: events go straight to the loaded model, behind synchronous calls in priority."""

from __future__ import annotations

import asyncio

from core.errors import NotReadyError, UnknownModelError
from functions.serving.batching import BACKGROUND, EVENT, SYNC
from functions.serving.runtime import FunctionModel
from functions.serving.v2json import encode_result, read_request

# Event priority attribute (contract) → batcher priority.
_LEVELS = {0: SYNC, 1: EVENT, 2: BACKGROUND}


class InProcessInvoker:
    """Satisfies :class:`events.invokers.Invoker` for models loaded in this process."""

    def __init__(self, models: dict[str, FunctionModel], ready_timeout_s: float = 600.0) -> None:
        self.models = models
        self.ready_timeout_s = ready_timeout_s

    async def infer(self, function: str, body: bytes, priority: int) -> tuple[bytes, str]:
        model = self.models.get(function)
        if model is None:
            raise UnknownModelError(f"function {function!r} is not served by this replica")
        if not model.ready:
            # The consumer joins its group while the model loads; early events wait here, not in a retry loop.
            try:
                await asyncio.wait_for(model.ready_event.wait(), self.ready_timeout_s)
            except TimeoutError:
                raise NotReadyError(f"model {function} is still loading") from None
        level = _LEVELS.get(priority, EVENT)
        request = read_request(body, None, function)
        result = await model.run(request, level)
        content, _ = encode_result(result)
        return content, result.model_version
