"""Iteration-level (continuous) batching on one thread: requests join between decode steps, leave when done.

The engine thread owns the model. Each iteration it drops cancelled work, admits waiting requests while
sequence slots are free (prefilled together, left-padded; a request that joins alone is computed exactly as
``generate`` computes it), then decodes one token for every running sequence in one batched forward pass. Chunks go to each
request's sink once per iteration. :class:`GenerationEngine` is the interface the edges use; another engine
(a GPU server, say) can stand behind it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from core.errors import InvalidInputError, TransientError
from functions.generation.batch_cache import BatchCache
from functions.generation.causal_lm import CausalLM
from functions.generation.limits import EngineLimits, EngineStats
from functions.generation.observer import EngineObserver, NoObserver
from functions.generation.sampling import Sampling, sequence_generator
from functions.generation.schema import (
    Chunk,
    Delta,
    FinishReason,
    GenerationEnd,
    GenerationError,
    GenerationRequest,
    GenerationStart,
    SequenceEnd,
    SequenceStart,
    Usage,
)
from functions.generation.streams import AsyncSink, BlockingSink, GenerationStream, Sink
from functions.generation.text_stream import TextStream
from functions.generation.waiting import WaitingQueue

log = logging.getLogger(__name__)


class GenerationEngine(ABC):
    """What the edges need from an engine."""

    @abstractmethod
    async def open(self, request: GenerationRequest) -> GenerationStream:
        """Validate and queue ``request`` (4xx/503 errors are raised here), then stream its chunks."""

    def generate(self, request: GenerationRequest, timeout_s: float = 600.0) -> list[Chunk]:
        """Blocking: every chunk of ``request`` (for callers on worker threads)."""
        return self.generate_many([request], timeout_s)[0]

    @abstractmethod
    def generate_many(self, requests: list[GenerationRequest], timeout_s: float = 600.0) -> list[list[Chunk]]:
        """Blocking: queue every request at once (so they share the batch), then every chunk of each."""

    @abstractmethod
    def stats(self) -> EngineStats: ...

    @abstractmethod
    def close(self) -> None: ...


@dataclass(eq=False)
class _Request:
    request: GenerationRequest
    prompt_ids: list[int]
    max_tokens: int
    sink: Sink = field(default_factory=Sink)
    submitted: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    first_token_s: float | None = None
    open_sequences: int = 0
    completion_tokens: int = 0
    out: list[Chunk] = field(default_factory=list)
    ignore_eos: bool = False

    @property
    def n(self) -> int:
        return self.request.generation_parameters.n


@dataclass(eq=False)
class _Sequence:
    owner: _Request
    index: int
    sampling: Sampling
    text: TextStream
    generator: torch.Generator
    generated: int = 0
    last_token: int = 0
    last_time: float = 0.0
    done: bool = False


class ContinuousBatchingEngine(GenerationEngine):
    """The CPU engine over a transformers :class:`CausalLM`."""

    def __init__(self, lm: CausalLM, limits: EngineLimits, observer: EngineObserver | None = None) -> None:
        self.lm = lm
        self.limits = limits
        self.observer = observer or NoObserver()
        self._cond = threading.Condition()
        self._waiting: WaitingQueue[_Request] = WaitingQueue(limits.max_waiting)
        self._rows: list[_Sequence] = []
        self._batch = BatchCache()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="generation-engine", daemon=True)
        self._thread.start()

    # -- the edges' side ----------------------------------------------------------------------------------------
    def prepare(self, request: GenerationRequest) -> _Request:
        """Tokenize and check a request against the model's context."""
        if (request.messages is None) == (request.prompt is None):
            raise InvalidInputError("give exactly one of 'messages' and 'prompt'")
        if request.messages is not None:
            if not request.messages:
                raise InvalidInputError("'messages' must not be empty")
            ids = self.lm.encode_chat(request.messages)
        else:
            ids = self.lm.encode_prompt(request.prompt or "")
        if not ids:
            raise InvalidInputError("the prompt is empty")
        params = request.generation_parameters
        room = self.lm.context_length - len(ids)
        wanted = params.max_tokens if "max_tokens" in params.model_fields_set else self.limits.default_max_tokens
        if room < 1 or ("max_tokens" in params.model_fields_set and wanted > room):
            raise InvalidInputError(
                f"the prompt has {len(ids)} tokens and {wanted} more were asked for; "
                f"the model's context is {self.lm.context_length} tokens"
            )
        if params.n > self.limits.max_running:
            raise InvalidInputError(f"n may be at most {self.limits.max_running} here")
        ignore_eos = params.provider_extensions.get("ignore_eos", False)
        if not isinstance(ignore_eos, bool):
            raise InvalidInputError("provider_extensions.ignore_eos must be true or false")
        return _Request(request, ids, min(wanted, room), ignore_eos=ignore_eos)

    def _enqueue(self, entry: _Request) -> None:
        with self._cond:
            if self._closed:
                raise TransientError("the generation engine is closed (the model is being unloaded); retry")
            self._waiting.push(entry, int(entry.request.priority))
            self._cond.notify()

    async def open(self, request: GenerationRequest) -> GenerationStream:
        loop = asyncio.get_running_loop()
        entry = await loop.run_in_executor(None, self.prepare, request)
        sink = entry.sink = AsyncSink(loop, chunk_bound(entry.n, entry.max_tokens))
        self._enqueue(entry)
        return GenerationStream(request.id, len(entry.prompt_ids), sink, lambda: self.cancel(entry))

    def generate_many(self, requests: list[GenerationRequest], timeout_s: float = 600.0) -> list[list[Chunk]]:
        entries = [self.prepare(request) for request in requests]
        sinks = []
        try:
            for entry in entries:
                sink = BlockingSink(chunk_bound(entry.n, entry.max_tokens))
                entry.sink = sink
                self._enqueue(entry)
                sinks.append(sink)
            return [sink.drain(timeout_s) for sink in sinks]
        except BaseException:
            for entry in entries:
                self.cancel(entry)
            raise

    def cancel(self, entry: _Request) -> None:
        with self._cond:
            if not entry.cancelled:
                entry.cancelled = True
                self._cond.notify()

    def stats(self) -> EngineStats:
        with self._cond:
            waiting = self._waiting.items()
            running = [s for s in self._rows if not s.done]
        return EngineStats(
            running_sequences=len(running),
            waiting_requests=len(waiting),
            waiting_sequences=sum(r.n for r in waiting),
            queued_tokens=sum(r.n * r.max_tokens for r in waiting)
            + sum(s.owner.max_tokens - s.generated for s in running),
        )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)

    # -- the engine thread -------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not len(self._waiting) and not self._rows:
                    self._cond.wait()
                if self._closed:
                    self._end_all("the generation engine stopped (the model is being unloaded); retry")
                    return
                for row in self._rows:
                    if row.owner.sink.gone:
                        row.owner.cancelled = True
                dropped = self._waiting.remove_if(lambda r: r.cancelled or r.sink.gone)
                admitted = self._admit()
            for entry in dropped:
                self._end_unstarted(entry)
            if admitted:
                self._start(admitted)
            self._retire_cancelled()
            if self._rows:
                self._step()

    def _admit(self) -> list[_Request]:
        admitted: list[_Request] = []
        free = self.limits.max_running - len(self._rows)
        longest = 0
        while len(admitted) < self.limits.max_prefills_per_step and len(self._waiting):
            head = self._waiting.peek()
            assert head is not None
            if head.n > free:
                break
            padded = (len(admitted) + 1) * max(longest, len(head.prompt_ids))
            if admitted and padded > self.limits.max_prefill_tokens:
                break
            admitted.append(self._waiting.pop())
            free -= head.n
            longest = max(longest, len(head.prompt_ids))
        return admitted

    def _emit(self, entry: _Request, *chunks: Chunk) -> None:
        entry.out.extend(chunks)

    def _flush(self, entries: list[_Request]) -> None:
        for entry in entries:
            if entry.out:
                chunks, entry.out = entry.out, []
                entry.sink.deliver(chunks)

    def _end_unstarted(self, entry: _Request) -> None:
        self._emit(entry, *self._start_chunks(entry))
        for index in range(entry.n):
            self._emit(entry, SequenceEnd(index=index, finish_reason=FinishReason.CANCELLED, completion_tokens=0))
        self._emit(entry, GenerationEnd(usage=self._usage(entry)))
        self.observer.cancelled(saved_tokens=entry.n * entry.max_tokens)
        self._flush([entry])

    def _start_chunks(self, entry: _Request) -> list[Chunk]:
        request = entry.request
        start: list[Chunk] = [GenerationStart(id=request.id, created=int(time.time()), model=request.model)]
        return start + [SequenceStart(index=i) for i in range(entry.n)]

    def _start(self, entries: list[_Request]) -> None:
        """Prefill the joining requests together, sample each sequence's first token, add their rows."""
        for entry in entries:
            self.observer.prompt(len(entry.prompt_ids))
        try:
            logits, cache = self.lm.prefill([entry.prompt_ids for entry in entries])
        except Exception as exc:
            log.exception("prefill failed")
            self._fail(entries, exc)
            return
        lengths, copies = [], []
        for row, entry in enumerate(entries):
            params = entry.request.generation_parameters
            sampling = Sampling(params.temperature, params.top_p, params.top_k)
            self._emit(entry, *self._start_chunks(entry))
            entry.open_sequences = entry.n
            sequences = [
                _Sequence(
                    entry, i, sampling, TextStream(self.lm.decode, params.stop), sequence_generator(params.seed, i)
                )
                for i in range(entry.n)
            ]
            for sequence in sequences:
                self._accept(sequence, sampling.pick(logits[row], sequence.generator))
            self._flush([entry])
            live = [s for s in sequences if not s.done]
            lengths.append(len(entry.prompt_ids))
            copies.append(len(live))
            self._rows.extend(live)
        if sum(copies):
            self._batch.append(cache, lengths, copies)

    def _accept(self, sequence: _Sequence, token: int) -> None:
        entry, now = sequence.owner, time.monotonic()
        sequence.generated += 1
        entry.completion_tokens += 1
        if entry.first_token_s is None:
            entry.first_token_s = now - entry.submitted
            self.observer.first_token(entry.first_token_s)
        else:
            self.observer.inter_token(now - sequence.last_time)
        sequence.last_time, sequence.last_token = now, token
        self.observer.generated(1)
        if token in self.lm.eos_ids and not entry.ignore_eos:
            self._finish(sequence, FinishReason.STOP)
            return
        delta = sequence.text.push(token)
        if delta:
            self._emit(entry, Delta(index=sequence.index, text=delta))
        if sequence.text.stopped:
            self._finish(sequence, FinishReason.STOP)
        elif sequence.generated >= entry.max_tokens:
            self._finish(sequence, FinishReason.LENGTH)

    def _finish(self, sequence: _Sequence, reason: FinishReason) -> None:
        entry = sequence.owner
        if reason != FinishReason.CANCELLED:
            rest = sequence.text.flush()
            if rest:
                self._emit(entry, Delta(index=sequence.index, text=rest))
        sequence.done = True
        self._emit(entry, SequenceEnd(index=sequence.index, finish_reason=reason, completion_tokens=sequence.generated))
        entry.open_sequences -= 1
        if entry.open_sequences == 0:
            self._emit(entry, GenerationEnd(usage=self._usage(entry)))

    def _usage(self, entry: _Request) -> Usage:
        prompt = len(entry.prompt_ids)
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=entry.completion_tokens,
            total_tokens=prompt + entry.completion_tokens,
            time_to_first_token_s=entry.first_token_s,
        )

    def _retire_cancelled(self) -> None:
        cancelled = [s for s in self._rows if s.owner.cancelled]
        if not cancelled:
            return
        owners: dict[int, _Request] = {}
        for sequence in cancelled:
            owners[id(sequence.owner)] = sequence.owner
            self._finish(sequence, FinishReason.CANCELLED)
        for owner in owners.values():
            saved = sum(owner.max_tokens - s.generated for s in cancelled if s.owner is owner)
            self.observer.cancelled(saved_tokens=saved)
        self._compact()
        self._flush(list(owners.values()))

    def _step(self) -> None:
        rows = self._rows
        try:
            logits = self.lm.decode_step([s.last_token for s in rows], self._batch)
        except Exception as exc:
            log.exception("decode step failed")
            self._fail(list({id(s.owner): s.owner for s in rows}.values()), exc)
            return
        late = 0
        for r, sequence in enumerate(rows):
            if sequence.owner.cancelled:
                late += 1  # computed in the step during which the cancel arrived; never sent
                continue
            self._accept(sequence, sequence.sampling.pick(logits[r], sequence.generator))
        if late:
            self.observer.late_tokens(late)
        owners = list({id(s.owner): s.owner for s in rows}.values())
        self._compact()
        self._flush(owners)

    def _compact(self) -> None:
        keep = [i for i, s in enumerate(self._rows) if not s.done]
        if len(keep) != len(self._rows):
            self._batch.keep(keep)
            self._rows = [self._rows[i] for i in keep]

    def _end_all(self, message: str) -> None:
        """Every waiting and running request ends with a retryable error (the engine is closing)."""
        entries = {id(s.owner): s.owner for s in self._rows}
        entries.update((id(e), e) for e in self._waiting.remove_if(lambda _e: True))
        self._rows, self._batch = [], BatchCache()
        for entry in entries.values():
            entry.out.append(GenerationError(code="unavailable", message=message, retryable=True))
        self._flush(list(entries.values()))

    def _fail(self, entries: list[_Request], exc: Exception) -> None:
        """End ``entries`` with an error chunk; a failed step took the whole batch's cache with it."""
        if any(s.owner in entries for s in self._rows):
            everyone = {id(s.owner): s.owner for s in self._rows}
            everyone.update((id(e), e) for e in entries)
            entries = list(everyone.values())
            self._rows, self._batch = [], BatchCache()
        for entry in entries:
            message = f"generation failed: {type(exc).__name__}"
            entry.out.append(GenerationError(code="model_error", message=message))
        self._flush(entries)


def chunk_bound(n: int, max_tokens: int) -> int:
    """The most chunks a request can produce: per sequence a start, a delta per token, a flush and an end."""
    return n * (max_tokens + 3) + 3
