"""Which candidates the control API may load: allowlisted sources, never the event buckets, allowed skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.hotswap.authority import Authority, ForbiddenError
from functions.hotswap.candidate import CandidateSpec

AUTHORITY = Authority(
    allowlist=("s3://wakeserve-models/", "s3://shared/models/echo", "s3://wakeserve-payloads/", "/srv/models"),
    packaged_dir=Path("/opt/functions/echo"),
    forbidden_buckets=frozenset({"wakeserve-payloads", "wakeserve-results"}),
    skippable_gates=frozenset({"latency"}),
)


@pytest.mark.parametrize(
    ("spec", "refusal"),
    [
        (CandidateSpec(), None),
        (CandidateSpec(model_uri="s3://wakeserve-models/echo/v2"), None),
        (CandidateSpec(model_uri="s3://shared/models/echo/v2"), None),
        (CandidateSpec(model_uri="s3://shared/models/echo"), None),
        (CandidateSpec(model_uri="s3://shared/models/echoes/v2"), "not under an allowed prefix"),
        (CandidateSpec(model_uri="s3://shared/models/echo/../secrets"), "not under an allowed prefix"),
        (CandidateSpec(model_uri="s3://wakeserve-models-evil/v2"), "not under an allowed prefix"),
        (CandidateSpec(model_uri="s3://wakeserve-payloads/p/1"), "never a model source"),
        (CandidateSpec(model_uri="s3://wakeserve-results/r/1"), "never a model source"),
        (CandidateSpec(model_uri="s3:///nobucket"), "no bucket"),
        (CandidateSpec(model_uri="/srv/models/echo/v2"), None),
        (CandidateSpec(model_uri="file:///srv/models/echo"), None),
        (CandidateSpec(model_uri="/srv/models/../../etc"), "not under an allowed prefix"),
        (CandidateSpec(model_uri="/srv/modelsx"), "not under an allowed prefix"),
        (CandidateSpec(model_uri="/opt/functions/echo/artifact"), None),
        (CandidateSpec(model_uri="/etc"), "not under an allowed prefix"),
        (CandidateSpec(model_uri="/proc/self"), "not under an allowed prefix"),
        (CandidateSpec(skip_gates=frozenset({"latency"})), None),
        (CandidateSpec(skip_gates=frozenset({"latency", "golden"})), "golden is not allowed"),
        (CandidateSpec(skip_gates=frozenset({"memory"})), "memory is not allowed"),
    ],
)
def test_candidates_are_held_to_the_authority(spec: CandidateSpec, refusal: str | None) -> None:
    if refusal is None:
        AUTHORITY.check(spec)
        return
    with pytest.raises(ForbiddenError, match=refusal.replace(".", r"\.")) as refused:
        AUTHORITY.check(spec)
    assert refused.value.status == 403


def test_a_symlink_out_of_an_allowed_directory_is_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "escape").symlink_to("/etc")
    authority = Authority(allowlist=(str(allowed),))
    authority.check_uri(str(allowed))
    with pytest.raises(ForbiddenError):
        authority.check_uri(str(allowed / "escape"))


@pytest.mark.parametrize(
    ("skippable", "spec", "refusal"),
    [
        (frozenset(), CandidateSpec(new_contract=True), "contract (new_contract skips contract) is not allowed"),
        ({"latency"}, CandidateSpec(new_contract=True), "contract (new_contract skips contract) is not allowed"),
        ({"contract"}, CandidateSpec(new_contract=True), None),
        ({"contract"}, CandidateSpec(new_contract=True, skip_gates=frozenset({"contract"})), None),
        ({"contract"}, CandidateSpec(new_contract=True, skip_gates=frozenset({"golden"})), "golden is not allowed"),
        (frozenset(), CandidateSpec(new_contract=False), None),
        (frozenset(), CandidateSpec(skip_gates=frozenset({"contract"})), "gate(s) contract is not allowed"),
    ],
)
def test_declaring_a_new_contract_counts_as_skipping_the_contract_gate(
    skippable: frozenset[str], spec: CandidateSpec, refusal: str | None
) -> None:
    authority = Authority(allowlist=("s3://wakeserve-models/",), skippable_gates=frozenset(skippable))
    if refusal is None:
        authority.check(spec)
        return
    with pytest.raises(ForbiddenError, match=refusal.replace("(", r"\(").replace(")", r"\)")) as refused:
        authority.check(spec)
    assert refused.value.status == 403
