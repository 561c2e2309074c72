"""Watch mode: a function's source files are re-imported into a candidate slot and swapped in when they change.

``skaffold dev`` syncs edited files into the running container and ``wakeserve up --watch`` points replicas at
the working tree; either way the replica notices the change itself, loads the new code beside the old, and
promotes it once it loads and keeps its contract, so no request is dropped. Versions in watch mode carry the
digest of the source they run (``1+src.3f2a9c1e``), so replicas started later report the same label.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import shutil
import sys
from pathlib import Path

from core.errors import ConflictError
from functions import catalog
from functions.hotswap.candidate import CandidateSpec
from functions.hotswap.lifecycle import Lifecycle

log = logging.getLogger(__name__)


def package_dir(function: str) -> Path:
    """Where the function's package is imported from."""
    return catalog.package_dir(function)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Cheap change detector: names, sizes and modification times of the package's Python files."""
    out = []
    for p in _files(root):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        out.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return tuple(out)


def digest(root: Path) -> str:
    """Content digest of the package's Python files (names and bytes), 8 hex digits."""
    h = hashlib.sha256()
    for p in _files(root):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()[:8]


def forget_modules(function: str) -> None:
    """Drop the function's package and its submodules (and their bytecode caches) so the next import reads
    the source again. Slots already loaded keep the classes they were built from."""
    prefix = catalog.package(function)
    root = package_dir(function)
    for name in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[name]
    for cache in root.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    importlib.invalidate_caches()


async def watch(
    lifecycle: Lifecycle,
    root: Path,
    base_version: str | None,
    skip_gates: frozenset[str],
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Poll ``root``; on a change, load the new source as a candidate and promote it when it passes its gates."""
    seen = signature(root)
    loaded = digest(root)
    log.info("watching %s for changes (every %.1fs)", root, interval_s)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
            return
        except TimeoutError:
            pass
        current = signature(root)
        if current == seen:
            continue
        new = await asyncio.to_thread(digest, root)
        if new == loaded:
            seen = current
            continue
        try:
            lifecycle.load_candidate(
                CandidateSpec(
                    version=base_version,
                    version_suffix=f"+src.{new}",
                    skip_gates=skip_gates,
                    promote=True,
                    reload_source=True,
                )
            )
        except ConflictError:
            continue  # a candidate is loading; look again on the next tick
        seen, loaded = current, new
        log.info("source of %s changed (%s); loading it beside the running version", lifecycle.name, new)
