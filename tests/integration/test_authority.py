"""Nobody swaps or unloads a model without authority, on real replica processes.

The inference port serves inference only; the control API, startup timeline and OpenAPI document live on
the admin listener behind its token; a candidate's artifacts must come from an allowed place (never the
payload bucket), gates are skipped only where allowed, a version is shown with its artifact digest, every
control action is logged, and artifacts are checked before their memory is committed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from functions.classifier.head import packaged_artifact
from tests.support.replicas import Replica, start_replica

pytestmark = [pytest.mark.integration]
TOKEN = "test-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
INFER = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}]}


def echo_artifact(root: Path, name: str, **config: Any) -> Path:
    (root / name).mkdir(parents=True)
    (root / name / "config.json").write_text(json.dumps(config))
    return root / name


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    """An echo replica with every default: no token, repository extension off."""
    replica = start_replica("echo", tmp_path_factory.mktemp("plain"))
    yield replica
    replica.process.stop()


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("allowed")
    echo_artifact(root, "good", version="v2")
    echo_artifact(root, "same-label", version="v2", delay_ms=0.5)
    return root


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, allowed: Path) -> Iterator[Replica]:
    """An echo replica with an admin token, the repository extension on, ``allowed`` on the allowlist (beside
    the payload bucket, which must stay refused) and only the latency gate skippable."""
    env = {
        "WAKESERVE_ADMIN_TOKEN": TOKEN,
        "WAKESERVE_ENABLE_REPOSITORY_API": "true",
        "WAKESERVE_MODEL_URI_ALLOWLIST": f"s3://wakeserve-models/,s3://wakeserve-payloads/,{allowed}",
        "WAKESERVE_ALLOW_SKIP_GATES": "latency",
    }
    replica = start_replica("echo", tmp_path_factory.mktemp("guarded"), env=env)
    yield replica
    replica.process.stop()


def infer(replica: Replica) -> dict[str, Any]:
    response = httpx.post(f"{replica.url}/v2/models/echo/infer", json=INFER, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def log_text(replica: Replica) -> str:
    return Path(replica.process.log_path).read_text(errors="replace")  # type: ignore[arg-type]


def wait_slots(replica: Replica, done: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        doc = httpx.get(f"{replica.admin_url}/wakeserve/models/echo/slots", headers=AUTH, timeout=10).json()
        if done(doc):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"slots never reached the expected state: {doc}")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/wakeserve/models/echo/slots"),
        ("POST", "/wakeserve/models/echo/slots/promote"),
        ("GET", "/wakeserve/models/echo/stats"),
        ("GET", "/wakeserve/startup"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
    ],
)
def test_the_inference_port_serves_no_control_route(plain: Replica, method: str, path: str) -> None:
    body = {"model_uri": "/etc", "version": "pwned-v9", "skip_gates": ["golden"], "promote": True}
    answer = httpx.request(method, plain.url + path, json=body if method == "POST" else None, timeout=10)
    assert answer.status_code == 404, answer.text
    assert infer(plain)["model_version"] == "1"


def test_the_repository_extension_is_off_by_default_on_rest_and_grpc(plain: Replica) -> None:
    for url in (plain.url, plain.admin_url):
        answer = httpx.post(f"{url}/v2/repository/models/echo/unload", timeout=10)
        assert answer.status_code == 501 and "repository" in answer.json()["error"]
    with grpc.insecure_channel(f"127.0.0.1:{plain.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="echo"), timeout=10)
    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert httpx.get(f"{plain.url}/v2/health/ready", timeout=10).status_code == 200
    assert infer(plain)["outputs"][0]["data"] == [1.0, 2.0]


def test_the_admin_listener_serves_startup_and_openapi(plain: Replica) -> None:
    startup = httpx.get(f"{plain.admin_url}/wakeserve/startup", timeout=10).json()
    assert startup["ready"] is True and startup["pid"] == plain.process.pid
    assert "/wakeserve/models/{name}/slots" in httpx.get(f"{plain.admin_url}/openapi.json", timeout=10).json()["paths"]


def test_a_token_is_required_when_configured(guarded: Replica) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        answer = httpx.get(f"{guarded.admin_url}/wakeserve/models/echo/slots", headers=headers, timeout=10)
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
    ok = httpx.get(f"{guarded.admin_url}/wakeserve/models/echo/slots", headers=AUTH, timeout=10)
    assert ok.status_code == 200 and ok.json()["active"]["digest"] == "packaged"
    with grpc.insecure_channel(f"127.0.0.1:{guarded.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="echo"), timeout=10)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert infer(guarded)["outputs"][0]["data"] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"model_uri": "/etc", "version": "pwned-v9"}, "not under an allowed prefix"),
        ({"model_uri": "/proc/self", "version": "pwned-v9"}, "not under an allowed prefix"),
        ({"model_uri": "s3://wakeserve-payloads/x", "version": "pwned-v9"}, "never a model source"),
        ({"model_uri": "s3://wakeserve-results/x", "version": "pwned-v9"}, "never a model source"),
        ({"model_uri": "s3://wakeserve-models-evil/x", "version": "pwned-v9"}, "not under an allowed prefix"),
        ({"version": "pwned-v9", "skip_gates": ["golden", "latency"]}, "golden is not allowed"),
    ],
)
def test_a_candidate_from_outside_the_allowlist_is_refused(guarded: Replica, body: dict[str, Any], reason: str) -> None:
    answer = httpx.post(f"{guarded.admin_url}/wakeserve/models/echo/slots", json=body, headers=AUTH, timeout=10)
    assert answer.status_code == 403 and reason in answer.json()["error"], answer.text
    slots = httpx.get(f"{guarded.admin_url}/wakeserve/models/echo/slots", headers=AUTH, timeout=10).json()
    assert slots["candidate"] is None or slots["candidate"]["version"] != "pwned-v9"
    assert "admin load refused of echo by 127.0.0.1:" in log_text(guarded)


def test_an_allowed_candidate_is_promoted_with_its_digest_and_logged(guarded: Replica, allowed: Path) -> None:
    body = {"model_uri": str(allowed / "good"), "version": "v2", "skip_gates": ["latency"], "promote": True}
    answer = httpx.post(f"{guarded.admin_url}/wakeserve/models/echo/slots", json=body, headers=AUTH, timeout=10)
    assert answer.status_code == 202, answer.text
    slots = wait_slots(guarded, lambda d: d["active"]["version"] == "v2")
    digest = slots["active"]["digest"]
    assert digest not in (None, "packaged") and len(digest) == 16
    stats = httpx.get(f"{guarded.admin_url}/wakeserve/models/echo/stats", headers=AUTH, timeout=10).json()
    assert (stats["active"], stats["active_digest"]) == ("v2", digest)
    assert infer(guarded)["model_version"] == "v2"
    text = log_text(guarded)
    assert "admin load of echo by 127.0.0.1:" in text and f"version v2 from {allowed / 'good'}" in text
    assert f"digest {digest}" in text  # the promotion, logged with the digest it promoted
    # The same label from other files is another version: another digest.
    other = {"model_uri": str(allowed / "same-label"), "version": "v2", "skip_gates": ["latency"]}
    httpx.post(f"{guarded.admin_url}/wakeserve/models/echo/slots", json=other, headers=AUTH, timeout=10)
    slots = wait_slots(guarded, lambda d: d["candidate"] is not None and d["candidate"]["state"] == "ready")
    assert slots["candidate"]["version"] == "v2" and slots["candidate"]["digest"] not in (None, digest)
    httpx.post(f"{guarded.admin_url}/wakeserve/models/echo/slots/abort", headers=AUTH, timeout=10)


def test_grpc_refuses_a_negative_dimension_as_rest_does(plain: Replica) -> None:
    bad = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2], "data": [1.0, 2.0]}]}
    rest = httpx.post(f"{plain.url}/v2/models/echo/infer", json=bad, timeout=10)
    assert rest.status_code == 400 and "non-negative" in rest.json()["error"]
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[-1, 2])
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    with grpc.insecure_channel(f"127.0.0.1:{plain.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(pb.ModelInferRequest(model_name="echo", inputs=[tensor]), timeout=10)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "non-negative" in str(refused.value.details())


@pytest.mark.slow
def test_a_head_whose_metadata_disagrees_with_its_weights_is_refused_before_it_allocates(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("heads")
    bad = root / "huge"
    bad.mkdir()
    for path in packaged_artifact().iterdir():
        (bad / path.name).write_bytes(path.read_bytes())
    config = json.loads((bad / "head.json").read_text())
    (bad / "head.json").write_text(json.dumps({**config, "hidden_dim": 300000, "version": "huge"}))
    replica = start_replica("classifier", root, env={"WAKESERVE_MODEL_URI_ALLOWLIST": str(root)})
    try:
        process = psutil.Process(replica.process.pid)
        before = process.memory_info().rss
        body = {"model_uri": str(bad), "version": "huge"}
        answer = httpx.post(f"{replica.admin_url}/wakeserve/models/classifier/slots", json=body, timeout=10)
        assert answer.status_code == 202, answer.text
        deadline, slots = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            url = f"{replica.admin_url}/wakeserve/models/classifier/slots"
            slots = httpx.get(url, timeout=10).json()
            if slots["candidate"] is None or slots["candidate"]["state"] == "failed":
                break
            time.sleep(0.1)
        grown_mb = (process.memory_info().rss - before) / 2**20
    finally:
        replica.process.stop()
    failed = slots["history"][-1]
    assert failed["event"] == "rejected" and failed["version"] == "huge"
    assert "net.0.weight" in failed["detail"] and "the metadata implies F32[300000, 384]" in failed["detail"]
    assert grown_mb < 100, f"the replica grew by {grown_mb:.0f} MiB for a refused head"
