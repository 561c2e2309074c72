"""Probes and ports in the manifests match the routes and ports the servers actually have.

The predictor's routes are asked of a real ``PredictorServer`` app (model-less, or with an echo model before and
after it loads), the ingress's of its app: liveness must answer before a model is loaded, readiness must not.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from events.ingress import Ingress
from events.ingress import build_app as build_ingress
from events.settings import EventSettings
from functions.echo.function import Echo
from functions.serving.events_bridge import add_cloudevents_route
from functions.serving.metrics import PredictorMetrics
from functions.serving.runtime import FunctionModel
from functions.serving.server import PredictorServer
from functions.serving.settings import PredictorSettings
from tests.manifests import entrypoints
from tests.manifests.references import CLOUDEVENTS_ROUTE
from tests.manifests.rendering import OVERLAYS, Rendered, ref

LIVE, READY, HEALTHZ = "/v2/health/live", "/v2/health/ready", "/healthz"


def model_ready(function: str) -> str:
    return f"/v2/models/{function}/ready"


@pytest.fixture(scope="module")
def predictor() -> TestClient:
    server = PredictorServer([], CollectorRegistry(), host="127.0.0.1", http_port=0, grpc_port=0)

    async def no_processor() -> Any:
        raise RuntimeError("not needed to find the route")

    add_cloudevents_route(server.rest_app, no_processor)
    return TestClient(server.app)


def test_the_predictor_routes_behave_as_the_probes_assume(predictor: TestClient) -> None:
    assert predictor.get(LIVE).status_code == 200, "liveness answers while the model is still loading"
    assert predictor.get(READY).status_code == 503, "readiness waits for the model"
    assert predictor.post(CLOUDEVENTS_ROUTE).status_code == 400, "the Trigger's route exists and wants an event"
    assert predictor.get("/v2/health/nothing").status_code == 404


def test_a_models_readiness_route_answers_only_once_it_is_loaded() -> None:
    # What a function's own probe path (/v2/models/<name>/ready) does; load_async includes the warm-up.
    registry = CollectorRegistry()
    model = FunctionModel(Echo(), PredictorMetrics(registry), max_batch_size=1, max_delay_ms=0, max_queue=1)
    server = PredictorServer([model], registry, host="127.0.0.1", http_port=0, grpc_port=0)
    client = TestClient(server.app)
    try:
        assert client.get(model_ready("echo")).status_code == 503
        assert client.get(model_ready("other")).status_code == 404, "a misspelt name would never turn ready"
        asyncio.run(model.load_async(lambda: None))
        assert client.get(model_ready("echo")).json() == {"name": "echo", "ready": True}
    finally:
        asyncio.run(model.close())


def test_the_ingress_health_route_exists() -> None:
    app = build_ingress(Ingress(cast(Any, None), EventSettings(), frozenset({"embedder"})))
    assert TestClient(app).get(HEALTHZ).status_code == 200


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_ports_match_the_servers(rendered: dict[str, Rendered], overlay: str) -> None:
    checked = set()
    for obj, _, container in rendered[f"overlays/{overlay}"].containers():
        where = f"{ref(obj)}/{container['name']}"
        args = entrypoints.parse(container["args"])
        ports = [p["containerPort"] for p in container.get("ports") or []]
        probes: dict[str, Any] = {k: container.get(k) for k in ("startupProbe", "readinessProbe", "livenessProbe")}
        if args.command == "serve":
            defaults = PredictorSettings.model_construct()
            http, grpc = args.http_port or defaults.http_port, args.grpc_port or defaults.grpc_port
            assert (http, grpc) == (defaults.http_port, defaults.grpc_port), f"{where}: ports differ from the code's"
            assert ports[0] == http, f"{where}: the first port is what KServe and Knative route to"
            assert set(ports) <= {http, grpc}, where
            paths = {k: (p or {}).get("httpGet", {}).get("path") for k, p in probes.items()}
            # Readiness: the server's (every model loaded) or the function's own model's, which is the same
            # on a one-function replica.
            ready = paths["readinessProbe"]
            assert ready in (READY, model_ready(args.function)), where
            assert paths == {"startupProbe": ready, "readinessProbe": ready, "livenessProbe": LIVE}, where
            for probe in probes.values():
                assert port_number(container, probe["httpGet"]["port"]) == http, where
            # Loading may take minutes on one CPU: the startup probe must allow it before liveness starts.
            startup = probes["startupProbe"]
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, where
        elif args.command == "ingress":
            assert ports == [args.port], where
            for key in ("readinessProbe", "livenessProbe"):
                probe = probes[key]
                assert probe["httpGet"]["path"] == HEALTHZ, where
                assert port_number(container, probe["httpGet"]["port"]) == args.port, where
        elif args.command == "scaler":
            assert ports == [args.port], where
            for key in ("readinessProbe", "livenessProbe"):
                assert port_number(container, probes[key]["tcpSocket"]["port"]) == args.port, where
        elif args.command == "dispatch":
            assert not ports and not any(probes.values()), f"{where}: the dispatcher serves nothing to probe"
        checked.add(args.command)
    assert "serve" in checked
