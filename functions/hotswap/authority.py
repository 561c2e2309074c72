"""What a control API caller may ask a replica to load: allowed artifact sources and skippable gates.

A candidate's ``model_uri`` must lie under one of the configured prefixes: an ``s3://bucket/prefix`` (the
bucket must match exactly and the key must continue the prefix at a ``/``) or a local directory (compared
after resolving symbolic links and ``..``, so ``/allowed/../etc`` is ``/etc``). The buckets event senders
can write to (payloads) and the results bucket are refused even when listed: anything put there could
otherwise become a served model. Gates may be skipped only where the replica's settings allow it, and
declaring a new contract skips the contract gate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.errors import ForbiddenError
from core.s3 import S3Uri
from functions.hotswap.candidate import CandidateSpec

__all__ = ["Authority", "ForbiddenError"]


@dataclass(frozen=True)
class Authority:
    """The limits every candidate from the control API is held to (watch mode builds its own specs)."""

    allowlist: tuple[str, ...]
    packaged_dir: Path | None = None
    forbidden_buckets: frozenset[str] = frozenset()
    skippable_gates: frozenset[str] = frozenset()

    def check(self, spec: CandidateSpec) -> None:
        """Raise :class:`ForbiddenError` with the reason when ``spec`` asks for more than is allowed."""
        if spec.model_uri is not None:
            self.check_uri(spec.model_uri)
        refused = sorted(spec.skipping - self.skippable_gates)
        if refused:
            allowed = ", ".join(sorted(self.skippable_gates)) or "none"
            declared = " (new_contract skips contract)" if spec.new_contract and "contract" in refused else ""
            raise ForbiddenError(
                f"skipping gate(s) {', '.join(refused)}{declared} is not allowed here (allowed: {allowed}; "
                "WAKESERVE_ALLOW_SKIP_GATES)"
            )

    def check_uri(self, uri: str) -> None:
        if uri.startswith("s3://"):
            self._check_s3(uri)
        else:
            self._check_local(uri)

    def _check_s3(self, uri: str) -> None:
        try:
            wanted = S3Uri.parse(uri)
        except ValueError as exc:
            raise ForbiddenError(str(exc)) from exc
        if wanted.bucket in self.forbidden_buckets:
            raise ForbiddenError(
                f"model_uri {uri} is in bucket {wanted.bucket!r}, which holds event payloads or results and "
                "is never a model source"
            )
        if not any(_s3_under(wanted, prefix) for prefix in self._s3_prefixes()):
            raise ForbiddenError(f"model_uri {uri} is not under an allowed prefix ({self._listed()})")

    def _check_local(self, uri: str) -> None:
        path = Path(uri.removeprefix("file://")).expanduser().resolve()
        roots = [Path(p.removeprefix("file://")).expanduser().resolve() for p in self._local_prefixes()]
        if self.packaged_dir is not None:
            roots.append(self.packaged_dir.resolve())
        if not any(path == root or path.is_relative_to(root) for root in roots):
            raise ForbiddenError(f"model_uri {uri} is not under an allowed prefix ({self._listed()})")

    def _s3_prefixes(self) -> Iterable[S3Uri]:
        for prefix in self.allowlist:
            if prefix.startswith("s3://"):
                parsed = S3Uri.parse(prefix)
                if parsed.bucket not in self.forbidden_buckets:
                    yield parsed

    def _local_prefixes(self) -> list[str]:
        return [p for p in self.allowlist if not p.startswith("s3://")]

    def _listed(self) -> str:
        listed = [*self.allowlist, *([str(self.packaged_dir)] if self.packaged_dir else [])]
        return ", ".join(listed) + "; WAKESERVE_MODEL_URI_ALLOWLIST"


def _s3_under(wanted: S3Uri, prefix: S3Uri) -> bool:
    if wanted.bucket != prefix.bucket:
        return False
    if not prefix.key:
        return True
    base = prefix.key if prefix.key.endswith("/") else prefix.key + "/"
    key = wanted.key if wanted.key.endswith("/") else wanted.key + "/"
    return key.startswith(base) and ".." not in wanted.key.split("/")
