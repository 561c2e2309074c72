"""The cluster scales with the numbers `wakeserve up` reads from manifests/base, in every topology."""

from __future__ import annotations

from typing import Any

import pytest

from tests.manifests.rendering import MANIFESTS, Rendered, ref
from wakeserve.manifests import load_functions, parse_functions


def scaling_documents(r: Rendered) -> list[tuple[str, dict[str, Any]]]:
    return [(r.name, o) for o in r.objects if o["kind"] in ("InferenceService", "ScaledObject")]


def test_the_knative_topology_runs_the_numbers_of_the_one_machine_runtime(rendered: dict[str, Rendered]) -> None:
    base = load_functions(MANIFESTS / "base")
    cluster = parse_functions(scaling_documents(rendered["overlays/knative"]))
    assert set(cluster) == set(base)
    for name, f in cluster.items():
        assert (f.kpa, f.trigger, f.scaled_object) == (base[name].kpa, base[name].trigger, base[name].scaled_object)


@pytest.mark.parametrize("overlay", ["keda", "dev"])
def test_the_keda_topologies_keep_the_lag_scaling_and_mirror_the_concurrency_target(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    base = load_functions(MANIFESTS / "base")
    r = rendered[f"overlays/{overlay}"]
    cluster = parse_functions(scaling_documents(r))
    assert cluster and set(cluster) <= set(base)
    for name, f in cluster.items():
        assert f.trigger == base[name].trigger
        spec, expected = f.scaled_object, base[name].scaled_object
        assert spec is not None and expected is not None
        assert (spec.polling_interval_s, spec.cooldown_period_s, spec.max_replicas) == (
            expected.polling_interval_s,
            expected.cooldown_period_s,
            expected.max_replicas,
        )
        hso = r.find("HTTPScaledObject", f"{name}-http")
        assert hso is not None
        # The HTTP add-on scales on held requests per replica, as the KPA does on concurrency.
        assert hso["spec"]["scalingMetric"]["concurrency"]["targetValue"] == base[name].kpa.target, ref(hso)
        assert hso["spec"]["scaledownPeriod"] == expected.cooldown_period_s, ref(hso)
