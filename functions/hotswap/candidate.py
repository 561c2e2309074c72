"""What a replica loads as its candidate version, from the control API or from watch mode."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidInputError
from functions.hotswap.documents import CandidateRequest, parse
from functions.hotswap.gates import SKIPPABLE

_MESSAGES = {
    "": "expected a JSON object with model_uri, version, skip_gates, promote ...",
    "skip_gates": f"skip_gates must be a list drawn from {sorted(SKIPPABLE)}",
    "model_uri": "model_uri must be a non-empty string",
    "version": "version must be a non-empty string",
    "new_contract": "new_contract must be true or false",
    "promote": "promote must be true or false",
}


@dataclass(frozen=True)
class CandidateSpec:
    """What to load: artifacts (None: the same source as the active version), an explicit version label,
    gates to skip, whether the contract may change, whether to promote as soon as the gates pass, and
    whether to re-import the function's source first (watch mode)."""

    model_uri: str | None = None
    version: str | None = None
    new_contract: bool = False
    skip_gates: frozenset[str] = frozenset()
    promote: bool = False
    reload_source: bool = False
    version_suffix: str = ""

    @property
    def skipping(self) -> frozenset[str]:
        """The gates this candidate does not run: those it names, and the contract gate when it declares a new
        contract (so the replica's allowance for skipping ``contract`` covers both)."""
        return self.skip_gates | ({"contract"} if self.new_contract else frozenset())

    @classmethod
    def from_json(cls, doc: object) -> CandidateSpec:
        """The body of ``POST .../slots``; 400 with the field at fault."""
        request = parse(CandidateRequest, doc, _MESSAGES)
        skip = frozenset(request.skip_gates or ())
        if not skip <= SKIPPABLE:
            raise InvalidInputError(_MESSAGES["skip_gates"])
        return cls(
            model_uri=request.model_uri,
            version=request.version,
            new_contract=request.new_contract,
            skip_gates=skip,
            promote=request.promote,
        )
