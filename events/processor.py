"""One request event in, one reply event out: decode, validate, fetch, infer, store, with bounded retries.

Transport-free: the Kafka consumer and the predictor's HTTP CloudEvents route both call it. Every failure
becomes an error event with a stable code; the caller dead-letters the original when ``error`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from core.errors import ExpiredError, ModelError, UnknownModelError, WakeserveError
from events import contract
from events.cloudevent import CloudEvent, from_kafka, json_object
from events.invokers import Invoker
from events.payloads import PayloadStore

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter for retryable failures."""

    max_attempts: int = 5
    base_ms: float = 100.0
    max_ms: float = 5_000.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_ms, self.base_ms * 2**attempt) * random.uniform(0.5, 1.0) / 1000.0)  # noqa: S311


@dataclass
class Outcome:
    """The reply to publish, and the error that made it an error event (then the original is dead-lettered)."""

    reply: CloudEvent
    error: WakeserveError | None = None


# What an error event copies from the request, so the sender can match it (and trace it).
_IDENTIFYING = ("id", "source", "model", "partitionkey", "traceparent", "tracestate")


def best_effort_event(headers: list[tuple[str, bytes]], key: bytes | None, value: bytes | None = None) -> CloudEvent:
    """What can be read of an undecodable record (from its ``ce_`` headers, else from a structured JSON body),
    so its error event still names the request."""
    attributes: dict[str, str] = {}
    for name, raw in headers:
        if name.startswith("ce_") and name[3:] in _IDENTIFYING:
            attributes[name[3:]] = raw.decode("utf-8", errors="replace")
    if not attributes and (doc := json_object(value)) is not None:
        # Numbers count as the codec reads them (as text); anything else cannot name the request.
        attributes = {
            name: str(doc[name])
            for name in _IDENTIFYING
            if isinstance(doc.get(name), str | int | float) and not isinstance(doc[name], bool)
        }
    if key is not None and "partitionkey" not in attributes:
        attributes["partitionkey"] = key.decode("utf-8", errors="replace")
    return CloudEvent(attributes)


class EventProcessor:
    """Runs request events for the functions in ``invoker``; knows nothing of Kafka or HTTP."""

    def __init__(
        self,
        functions: frozenset[str],
        invoker: Invoker,
        payloads: PayloadStore,
        *,
        source: str,
        inline_result_limit: int,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.functions = functions
        self.invoker = invoker
        self.payloads = payloads
        self.source = source
        self.inline_result_limit = inline_result_limit
        self.retry = retry
        self._sleep = sleep

    async def process_record(self, headers: list[tuple[str, bytes]], key: bytes | None, value: bytes | None) -> Outcome:
        try:
            event = from_kafka(headers, key, value)
        except WakeserveError as exc:
            return Outcome(contract.error_event(best_effort_event(headers, key, value), self.source, exc), exc)
        return await self.process(event)

    async def process(self, event: CloudEvent) -> Outcome:
        try:
            return Outcome(await self._run(event))
        except WakeserveError as exc:
            return Outcome(contract.error_event(event, self.source, exc), exc)
        except Exception as exc:
            log.exception("unexpected failure processing event %s", event.get("id"))
            err = ModelError(f"{type(exc).__name__}: {exc}")
            return Outcome(contract.error_event(event, self.source, err), err)

    async def _retrying(self, request: contract.InferenceRequest, step: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            if contract.expired(request):
                raise ExpiredError(f"deadline {request.event.get('deadline')} passed before the request ran")
            try:
                return await step()
            except WakeserveError as exc:
                attempt += 1
                if not exc.retryable or attempt >= self.retry.max_attempts:
                    if exc.retryable:
                        exc.message = f"{exc.message} (gave up after {attempt} attempts)"
                    raise
                log.warning("retrying event %s after %s (attempt %d)", request.id, exc.message, attempt)
                await self._sleep(self.retry.delay(attempt - 1))

    async def _run(self, event: CloudEvent) -> CloudEvent:
        request = contract.parse_request(event)
        if request.model not in self.functions:
            raise UnknownModelError(f"this consumer serves {', '.join(sorted(self.functions))}, not {request.model!r}")
        if request.dataref is not None:
            dataref = request.dataref
            self.payloads.check(dataref)
            body = await self._retrying(request, lambda: self.payloads.fetch(dataref))
        else:
            body = event.data or b""
        response, version = await self._retrying(
            request, lambda: self.invoker.infer(request.model, body, request.priority)
        )
        if len(response) > self.inline_result_limit:
            key = contract.result_key(request.model, event)
            uri = await self._retrying(request, lambda: self.payloads.put_result(key, response))
            return contract.result_event(event, self.source, version, dataref=uri)
        return contract.result_event(event, self.source, version, data=response)
