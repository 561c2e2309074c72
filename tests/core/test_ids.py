from __future__ import annotations

import multiprocessing
import re
import uuid

from core.ids import new_id

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_ids_are_version_4_uuids():
    for _ in range(1000):
        text = new_id()
        assert UUID4.match(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


def test_ids_do_not_repeat():
    assert len({new_id() for _ in range(50_000)}) == 50_000


def _child_ids(queue: multiprocessing.Queue) -> None:
    queue.put([new_id() for _ in range(100)])


def test_a_forked_child_draws_a_different_sequence():
    new_id()  # the parent's generator is in use before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_ids, args=(queue,))
    child.start()
    theirs = queue.get(timeout=30)
    child.join(timeout=30)
    ours = [new_id() for _ in range(100)]
    assert set(theirs).isdisjoint(ours)
