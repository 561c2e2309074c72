"""Fixtures: every kustomization rendered once per session, and the shared upstream schemas when present."""

from __future__ import annotations

import pytest

from tests.manifests.rendering import KUBECTL, KUSTOMIZATIONS, Rendered, kustomize
from tests.manifests.schemas import SHARED_SCHEMAS, schemas_available


@pytest.fixture(scope="session")
def rendered() -> dict[str, Rendered]:
    """Name (``overlays/keda``, ``base``, ...) -> its rendered objects."""
    if KUBECTL is None:
        pytest.skip(
            "kubectl is not on PATH, so the kustomizations cannot be rendered (kubectl >= 1.27 embeds kustomize v5)"
        )
    return {name: Rendered(name, kustomize(path)) for name, path in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="session")
def shared_schemas() -> None:
    """Skip when ../shared/schemas is absent (a fresh clone); when present, tests must validate against it."""
    if not schemas_available():
        pytest.skip(f"{SHARED_SCHEMAS} is absent: the upstream CRD and skaffold schemas are not available here")
