"""Identifiers for the events and responses wakeserve creates, without a system call per identifier.

``uuid.uuid4()`` reads 16 bytes from the kernel each time; on this project's reference machine that read
costs ~20 us, a tenth of a trivial event's whole budget. These ids only need to be unique, not unguessable,
so they are version-4 UUIDs drawn from the interpreter's Mersenne Twister, which is seeded from the OS at
start-up and re-seeded in every forked child (``random`` registers an at-fork hook), so replicas and workers
never share a sequence.
"""

from __future__ import annotations

import random

_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def new_id() -> str:
    """A random version-4 UUID string (122 random bits)."""
    h = f"{random.getrandbits(128) & _VERSION_MASK | _VERSION_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
