"""The states of a model slot and the JSON documents of a replica's control API, shared by the replica that
writes them (:mod:`functions.hotswap.control`) and the rollout controller of ``wakeserve up`` that reads them.

Field names and values are the wire format: a document parsed by one side and dumped by the other gives the
same JSON back.
"""

from __future__ import annotations

import enum
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInputError


class SlotState(enum.StrEnum):
    """Where a slot is in its life: a candidate goes loading → gating → ready → active → retiring → retired,
    or ends failed (a gate said no) or aborted (dropped before promotion)."""

    LOADING = "loading"
    GATING = "gating"
    READY = "ready"  # gated, may take canary traffic or be promoted
    ACTIVE = "active"
    RETIRING = "retiring"  # replaced, finishing the requests bound to it
    RETIRED = "retired"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def busy(self) -> bool:
        """Still working towards a verdict: a second candidate must not replace it yet."""
        return self in (SlotState.LOADING, SlotState.GATING)


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Request(_Document):
    """A body a client sends: no coercion, so ``"promote": "yes"`` or ``"percent": true`` is refused."""

    model_config = ConfigDict(strict=True)


NonEmpty = Annotated[str, Field(min_length=1)]


class CandidateRequest(_Request):
    """``POST /wakeserve/models/{name}/slots``: the candidate to load beside the active version."""

    model_uri: NonEmpty | None = None
    version: NonEmpty | None = None
    new_contract: bool = False
    skip_gates: list[str] | None = None
    promote: bool = False


class CanaryRequest(_Request):
    """``POST /wakeserve/models/{name}/slots/canary``: the share of new requests for the gated candidate."""

    percent: Annotated[float, Field(ge=0, le=100)]


class ProbeRequest(_Request):
    """``POST /wakeserve/models/{name}/slots/probe``: rounds of the golden inputs on both slots, interleaved."""

    rounds: Annotated[int, Field(ge=1, le=50)] = 5


class GateDocument(_Document):
    name: str
    passed: bool
    detail: str
    skipped: bool = False


class SlotDocument(_Document):
    """One slot as ``GET .../slots`` shows it."""

    version: str
    digest: str | None = None  # content digest of the artifacts; with the version, the slot's identity
    source: str
    state: SlotState
    inflight: int
    queued: int
    load_s: float | None
    memory_mb: float | None
    error: str | None
    released: bool
    gates: list[GateDocument]


class SwapDocument(_Document):
    at: float
    event: str
    version: str
    detail: str = ""


class SlotsDocument(_Document):
    """``GET /wakeserve/models/{name}/slots`` and the answer of every slot action."""

    model: str
    active: SlotDocument | None
    candidate: SlotDocument | None
    canary_percent: float
    history: list[SwapDocument]


class VersionCountsDocument(_Document):
    requests: int
    errors: int


class CandidateSlotDocument(_Document):
    version: str
    state: SlotState
    error: str | None
    digest: str | None = None


D = TypeVar("D", bound=BaseModel)
Sample = tuple[int, str, float, bool]  # sequence number, version, latency in seconds, not a server error


class StatsDocument(_Document):
    """``GET /wakeserve/models/{name}/stats?after=N``: user traffic per version since sequence ``after``."""

    last: int
    versions: dict[str, VersionCountsDocument]
    samples: list[Sample] = Field(default_factory=list)
    active: str
    active_digest: str | None = None  # a version is its label and its artifact digest
    candidate: str | None  # the candidate's version once it passed its gates, else None
    candidate_slot: CandidateSlotDocument | None
    canary_percent: float


class ProbeSample(_Document):
    version: str
    latency_s: float
    ok: bool


class ProbeDocument(_Document):
    """The answer of a probe: every call in the order made, so each candidate call has a stable call beside it."""

    samples: list[ProbeSample]
    refused: str | None = None  # why this candidate cannot be probed at all (its inputs changed)


def parse(model: type[D], doc: object, messages: dict[str, str]) -> D:
    """``doc`` as ``model``, or a 400 naming the first field at fault (``messages`` by field name; unknown
    fields are listed)."""
    if not isinstance(doc, dict):
        raise InvalidInputError(messages.get("", f"expected a JSON object with {', '.join(model.model_fields)}"))
    unknown = sorted(set(doc) - set(model.model_fields))
    if unknown:
        raise InvalidInputError(f"unknown field(s) {unknown}")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        raise InvalidInputError(messages.get(field, f"{field}: {error['msg']}")) from exc
