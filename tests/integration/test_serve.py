"""A real predictor process per function, spoken to over REST (JSON and binary) and gRPC."""

from __future__ import annotations

import asyncio
import json
import re

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from functions.classifier.train import DATA, split

pytestmark = pytest.mark.integration


def text_request(texts, request_id=None):
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": list(texts)}]}
    if request_id:
        body["id"] = request_id
    return body


def embed(replica, texts):
    r = httpx.post(f"{replica.url}/v2/models/embedder/infer", json=text_request(texts), timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if m and ",".join(sorted(m.group(1).split(","))) == wanted:
            return float(m.group(2))
    return 0.0


def test_not_ready_until_loaded_and_warmed_up(embedder):
    # While the model loaded, the replica was already live but answered 503 on readiness.
    assert embedder.startup[0] == (200, 503)
    assert embedder.startup[-1] == (200, 200)
    assert httpx.get(f"{embedder.url}/v2/models/embedder/ready").json() == {"name": "embedder", "ready": True}


def test_server_and_model_metadata(embedder, classifier):
    server = httpx.get(f"{embedder.url}/v2").json()
    assert server["name"] == "kserve"
    meta = httpx.get(f"{embedder.url}/v2/models/embedder").json()
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    meta = httpx.get(f"{classifier.url}/v2/models/classifier").json()
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 5]},
    ]


def test_embeddings_are_normalised_and_related_sentences_are_closer(embedder):
    vectors = embed(
        embedder,
        ["A man is playing a guitar.", "Someone plays an acoustic guitar.", "The stock market fell sharply today."],
    )
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    related, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert related > 0.5 > unrelated


def test_response_carries_the_request_id_or_a_fresh_one(embedder):
    given = httpx.post(f"{embedder.url}/v2/models/embedder/infer", json=text_request(["x"], "my-id-7")).json()
    assert given["id"] == "my-id-7" and given["model_version"] == "all-MiniLM-L6-v2"
    fresh = httpx.post(f"{embedder.url}/v2/models/embedder/infer", json=text_request(["x"])).json()
    assert len(fresh["id"]) >= 16


def test_plain_json_and_kserve_objects_answer_alike(classifier):
    """A plain JSON request takes the lean reading; one with parameters goes through KServe's objects."""
    url = f"{classifier.url}/v2/models/classifier/infer"
    plain = {**text_request(["my card was charged twice"], "same-id"), "outputs": [{"name": "label"}]}
    with_parameters = {**plain, "parameters": {"binary_data_output": False}}
    lean, kserve = httpx.post(url, json=plain, timeout=30), httpx.post(url, json=with_parameters, timeout=30)
    assert lean.status_code == kserve.status_code == 200, (lean.text, kserve.text)
    assert lean.json() == kserve.json()
    assert [o["name"] for o in lean.json()["outputs"]] == ["label"]
    bad = {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    errors = [httpx.post(url, json=b, timeout=30) for b in (bad, {**bad, "parameters": {"x": 1}})]
    assert [e.status_code for e in errors] == [400, 400]
    assert errors[0].json() == errors[1].json()
    assert "expected BYTES" in errors[0].json()["error"]


def test_binary_tensor_extension_with_tritonclient(embedder):
    texts = ["binary in", "binary out"]
    client = triton.InferenceServerClient(url=f"127.0.0.1:{embedder.http_port}")
    try:
        tensor = triton.InferInput("text", [2], "BYTES")
        tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object), binary_data=True)
        result = client.infer(
            "embedder", [tensor], outputs=[triton.InferRequestedOutput("embedding", binary_data=True)]
        )
        binary = result.as_numpy("embedding")
    finally:
        client.close()
    np.testing.assert_allclose(binary, embed(embedder, texts), atol=1e-5)


def test_grpc_infer_and_health(embedder):
    with grpc.insecure_channel(f"127.0.0.1:{embedder.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
        request = pb.ModelInferRequest(
            model_name="embedder",
            id="grpc-1",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="text", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[b"hi"])
                )
            ],
        )
        response = stub.ModelInfer(request, timeout=30)
        assert response.id == "grpc-1"
        assert list(response.outputs[0].shape) == [1, 384]
        vector = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
        np.testing.assert_allclose(vector, embed(embedder, ["hi"])[0], atol=1e-5)

        bad = pb.ModelInferRequest(model_name="nope", inputs=request.inputs)
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(bad, timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        wrong = pb.ModelInferRequest(
            model_name="embedder",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="text", datatype="FP32", shape=[1], contents=pb.InferTensorContents(fp32_contents=[1.0])
                )
            ],
        )
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(wrong, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "expected BYTES" in err.value.details()


def test_64_concurrent_requests_are_batched_and_equal_to_unbatched(embedder):
    texts = [f"sentence number {i} about {'cats' if i % 2 else 'databases'}" for i in range(64)]
    # Sequential requests each run alone: the unbatched reference.
    reference = np.concatenate([embed(embedder, [t]) for t in texts[:16]])
    before = httpx.get(f"{embedder.url}/metrics").text

    async def fire():
        async with httpx.AsyncClient(base_url=embedder.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post("/v2/models/embedder/infer", json=text_request([t], f"c-{i}"))
                    for i, t in enumerate(texts)
                )
            )

    responses = asyncio.run(fire())
    after = httpx.get(f"{embedder.url}/metrics").text
    assert all(r.status_code == 200 for r in responses)
    assert [r.json()["id"] for r in responses] == [f"c-{i}" for i in range(64)]
    batched = np.array([r.json()["outputs"][0]["data"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(batched[:16], reference, atol=1e-5)
    # Each answer is its own sentence's embedding, not a neighbour's.
    assert np.all(np.argmax(batched @ batched.T, axis=1) == np.arange(64))
    executions = metric(after, "wakeserve_batch_size_count", model="embedder") - metric(
        before, "wakeserve_batch_size_count", model="embedder"
    )
    rows = metric(after, "wakeserve_batch_size_sum", model="embedder") - metric(
        before, "wakeserve_batch_size_sum", model="embedder"
    )
    assert rows == 64
    assert executions < 64  # requests were merged


def test_classifier_from_s3_labels_held_out_phrases(classifier):
    _, held_out = split(json.loads(DATA.read_text()))
    labels = sorted(json.loads(DATA.read_text()))
    texts = [p for p, _ in held_out]
    r = httpx.post(f"{classifier.url}/v2/models/classifier/infer", json=text_request(texts), timeout=60)
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    predicted = outputs["label"]["data"]
    expected = [labels[y] for _, y in held_out]
    accuracy = np.mean([p == e for p, e in zip(predicted, expected)])
    assert accuracy >= 0.9, list(zip(texts, predicted, expected))
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert r.json()["model_version"].startswith("head-")


def test_classifier_binary_outputs(classifier):
    client = triton.InferenceServerClient(url=f"127.0.0.1:{classifier.http_port}")
    try:
        tensor = triton.InferInput("text", [2], "BYTES")
        tensor.set_data_from_numpy(np.array([b"where is my parcel?", b"I was charged twice"], dtype=object))
        result = client.infer("classifier", [tensor], outputs=[triton.InferRequestedOutput("label", binary_data=True)])
        assert list(result.as_numpy("label")) == [b"shipping", b"billing"]
        assert result.as_numpy("probabilities") is None  # only the requested output is returned
    finally:
        client.close()


ERROR_CASES = [
    ("unknown model", "/v2/models/nope/infer", text_request(["a"]), 404, "does not exist"),
    ("unknown model metadata", "/v2/models/nope", None, 404, "does not exist"),
    (
        "wrong input name",
        "/v2/models/embedder/infer",
        {"inputs": [{"name": "txt", "datatype": "BYTES", "shape": [1], "data": ["a"]}]},
        400,
        "unexpected input 'txt'; this model expects: text BYTES[-1]",
    ),
    (
        "wrong datatype",
        "/v2/models/embedder/infer",
        {"inputs": [{"name": "text", "datatype": "INT32", "shape": [1], "data": [1]}]},
        400,
        "has datatype INT32, expected BYTES",
    ),
    (
        "wrong rank",
        "/v2/models/embedder/infer",
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 1], "data": ["a"]}]},
        400,
        "has shape [1, 1], expected [-1]",
    ),
    (
        "shape and data disagree",
        "/v2/models/embedder/infer",
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a"]}]},
        400,
        "does not decode",
    ),
    (
        "not a string",
        "/v2/models/embedder/infer",
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [3]}]},
        400,
        "expected a string",
    ),
    ("no inputs field", "/v2/models/embedder/infer", {"id": "x"}, 400, "inputs"),
    ("truncated JSON", "/v2/models/embedder/infer", b'{"inputs": [{"na', 400, "not a valid v2 inference request"),
    ("not JSON at all", "/v2/models/embedder/infer", b"\x00\x01 garbage", 400, "not a valid v2 inference request"),
    (
        "unknown requested output",
        "/v2/models/embedder/infer",
        {**text_request(["a"]), "outputs": [{"name": "vector"}]},
        400,
        "do not exist",
    ),
]


@pytest.mark.parametrize(("case", "path", "body", "status", "reason"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
@pytest.mark.parametrize("content_type", ["application/json", None])
def test_errors_are_json_with_a_reason(embedder, case, path, body, status, reason, content_type):
    headers = {"content-type": content_type} if content_type else {}
    if body is None:
        r = httpx.get(embedder.url + path)
    else:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = httpx.post(embedder.url + path, content=content, headers=headers)
    assert r.status_code == status, r.text
    assert reason in r.json()["error"]
    # The replica is unharmed: the next valid request succeeds.
    assert embed(embedder, ["still fine"]).shape == (1, 384)


def test_full_queue_answers_503_with_reason_and_others_succeed(echo_tight):
    payload = np.random.default_rng(0).random((256, 512), dtype=np.float32)

    async def fire():
        async with httpx.AsyncClient(base_url=echo_tight.url, timeout=60) as client:
            body = {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [256, 512], "data": payload.ravel().tolist()}]
            }
            return await asyncio.gather(*(client.post("/v2/models/echo/infer", json=body) for _ in range(24)))

    responses = asyncio.run(fire())
    refused = [r for r in responses if r.status_code == 503]
    served = [r for r in responses if r.status_code == 200]
    assert refused and served and len(refused) + len(served) == 24
    assert all("queue is full" in r.json()["error"] and r.headers["retry-after"] for r in refused)
    for r in served:
        np.testing.assert_array_equal(np.array(r.json()["outputs"][0]["data"], np.float32), payload.ravel())


def test_metrics_count_what_was_served(embedder):
    before = httpx.get(f"{embedder.url}/metrics").text
    for _ in range(3):
        embed(embedder, ["count me"])
    httpx.post(
        f"{embedder.url}/v2/models/embedder/infer",
        json={"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1]}]},
    )
    after = httpx.get(f"{embedder.url}/metrics").text
    v = {"model": "embedder", "version": "all-MiniLM-L6-v2"}  # every count says which version served it
    ok = metric(after, "wakeserve_requests_total", outcome="ok", **v) - metric(
        before, "wakeserve_requests_total", outcome="ok", **v
    )
    bad = metric(after, "wakeserve_requests_total", outcome="invalid_input", **v) - metric(
        before, "wakeserve_requests_total", outcome="invalid_input", **v
    )
    assert (ok, bad) == (3, 1)
    assert metric(after, "wakeserve_request_duration_seconds_count", **v) >= 4
    assert 'wakeserve_queue_depth{model="embedder"}' in after
    assert metric(after, "wakeserve_model_ready", model="embedder") == 1


def test_health_answers_promptly_under_full_load(embedder):
    texts = ["a long sentence that keeps the model busy for a while " * 8] * 32

    async def scenario():
        async with httpx.AsyncClient(base_url=embedder.url, timeout=120) as client:
            load = [
                asyncio.create_task(client.post("/v2/models/embedder/infer", json=text_request(texts)))
                for _ in range(6)
            ]
            await asyncio.sleep(0.3)
            loop = asyncio.get_running_loop()
            timings = []
            for _ in range(5):
                start = loop.time()
                r = await client.get("/v2/health/ready")
                timings.append((r.status_code, loop.time() - start))
                await asyncio.sleep(0.05)
            busy = not all(t.done() for t in load)
            results = await asyncio.gather(*load)
            return timings, busy, results

    timings, busy, results = asyncio.run(scenario())
    assert busy, "the model finished before health was probed; the load is too small to prove anything"
    assert all(status == 200 for status, _ in timings)
    assert max(t for _, t in timings) < 0.5
    assert all(r.status_code == 200 for r in results)


def test_binds_loopback_only_by_default(embedder):
    import psutil

    listening = {
        (c.laddr.ip.removeprefix("::ffff:"), c.laddr.port)  # gRPC listens on an IPv4-mapped socket
        for c in psutil.Process(embedder.process.pid).connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert ("127.0.0.1", embedder.http_port) in listening
    assert ("127.0.0.1", embedder.grpc_port) in listening
    assert all(ip == "127.0.0.1" for ip, _ in listening), listening


def test_sigterm_stops_the_replica_cleanly(tmp_path):
    from tests.support.replicas import start_replica

    replica = start_replica("echo", tmp_path)
    assert httpx.post(
        f"{replica.url}/v2/models/echo/infer",
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]},
    ).json()["outputs"][0]["data"] == [1.0, 2.0]
    assert replica.process.stop(grace=15) == 0
