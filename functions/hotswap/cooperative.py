"""Background work (loading and gating a candidate version) that gives way to the version serving requests."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


class _Held(threading.local):
    depth = 0  # shared sections this thread is inside


_held = _Held()


@contextlib.contextmanager
def holding_shared() -> Iterator[None]:
    """Marks code that holds a lock the serving thread may need (a shared tokenizer): background work does
    not pause inside it, or the serving thread would wait for the pause to end."""
    _held.depth += 1
    try:
        yield
    finally:
        _held.depth -= 1


class StoppedError(Exception):
    """Raised inside background work whose owner called :meth:`StepAside.stop`."""


class StepAside:
    """Runs work on the calling thread so that it pauses at every Python call while ``busy()``: it sleeps
    (releasing the GIL) until the active version's requests are done, up to ``max_wait_s`` at a time.

    Loading a transformers model is mostly Python holding the GIL, and a candidate's warm-up and gate runs are
    torch calls that take the GIL back after every operation; next to them, the serving thread and the event
    loop wait for the GIL at every step (about 80 ms in all for a MiniLM load here). Stepping aside makes the
    background work slower and serving does not notice. ``waited_s`` is the time spent paused. Under
    saturation (busy all the time) a pause that runs out is followed by ``max_wait_s / 10`` of work without
    pauses, so the work still gets about a tenth of the time and finishes. When not busy it still pauses
    briefly every ``slice_s``, so a thread waiting for the GIL (the event loop reading a new request) gets it
    within about that long. :meth:`stop` ends the work at its next Python call outside a shared section.
    """

    def __init__(self, busy: Callable[[], bool], max_wait_s: float = 0.05, slice_s: float = 0.002) -> None:
        self.busy = busy
        self.max_wait_s = max_wait_s
        self.slice_s = slice_s
        self.waited_s = 0.0
        self._free_until = 0.0
        self._slice_end = 0.0
        self._stopped = False

    def stop(self) -> None:
        """From any thread: the work raises :class:`StoppedError` at its next call outside a shared section."""
        self._stopped = True

    def _hook(self, _frame: object, event: str, _arg: object) -> None:
        if event != "call" or _held.depth:
            return
        if self._stopped:
            raise StoppedError("stopped by its owner")
        now = time.monotonic()
        if not self.busy():
            if now >= self._slice_end:
                # A request that has just arrived is not counted as busy until the event loop has read it, and
                # the event loop needs the GIL for that: leave it a gap every slice instead of making it wait
                # CPython's switch interval (5 ms).
                time.sleep(0.0002)
                self._slice_end = time.monotonic() + self.slice_s
                self.waited_s += self._slice_end - self.slice_s - now
            return
        if now < self._free_until:
            return
        deadline = now + self.max_wait_s
        while self.busy() and not self._stopped:
            current = time.monotonic()
            if current >= deadline:
                self._free_until = current + self.max_wait_s / 10
                break
            time.sleep(0.0005)
        self.waited_s += time.monotonic() - now

    def run(self, work: Callable[[], T]) -> T:
        sys.setprofile(self._hook)  # this thread only
        try:
            return work()
        finally:
            sys.setprofile(None)


def loading_quietly(step_aside: StepAside, work: Callable[[], None]) -> Callable[[], None]:
    """``work`` under ``step_aside``, with transformers loading weights on this thread."""

    def run() -> None:
        # transformers materialises weights on a pool of its own threads, which the hook cannot slow down;
        # its documented switch loads them on the calling thread instead.
        previous = os.environ.get("HF_DEACTIVATE_ASYNC_LOAD")
        os.environ["HF_DEACTIVATE_ASYNC_LOAD"] = "1"
        try:
            step_aside.run(work)
        finally:
            if previous is None:
                os.environ.pop("HF_DEACTIVATE_ASYNC_LOAD", None)
            else:
                os.environ["HF_DEACTIVATE_ASYNC_LOAD"] = previous

    return run


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection while a model loads; what it allocated then joins the permanent generation.

    A load allocates ~100k long-lived objects, enough to trigger full collections, each a pause of up to
    ~200 ms for every thread; the replica froze its startup objects the same way (``functions.serving.startup``).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()
