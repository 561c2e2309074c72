"""The KEDA external scaler: its contract, metadata resolution, and the four RPCs over real gRPC on tansu."""

from __future__ import annotations

import asyncio
import importlib.resources
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2

from core.errors import InvalidInputError
from core.processes import ChildProcess, free_port, port_open
from events.contract import Topics
from events.settings import EventSettings
from scalers import external
from scalers.external import ExternalScalerStub, ScalerSettings, resolve, start_scaler_server
from scalers.keda import KafkaTrigger
from scalers.proto import generate
from tests.scalers.conftest import Broker, unique_group

ROOT = Path(__file__).resolve().parents[2]


def test_the_proto_file_is_the_served_contract(tmp_path):
    protoc = pytest.importorskip(
        "grpc_tools.protoc", reason="grpcio-tools (a development dependency) compiles the .proto"
    )
    out = tmp_path / "externalscaler.pb"
    includes = importlib.resources.files("grpc_tools") / "_proto"
    argv = ["protoc", f"-I{ROOT}", f"-I{includes}", f"--descriptor_set_out={out}", str(generate.PROTO)]
    assert protoc.main(argv) == 0
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    # protoc's Python output leaves out json_name (derived from the field name), so compare without it.
    for message in [*compiled.message_type, *(n for m in compiled.message_type for n in m.nested_type)]:
        for field in message.field:
            field.ClearField("json_name")
    served = descriptor_pb2.FileDescriptorProto.FromString(external.pb.DESCRIPTOR.serialized_pb)
    assert served == compiled
    assert [m.name for m in served.service[0].method] == ["IsActive", "StreamIsActive", "GetMetricSpec", "GetMetrics"]


@pytest.mark.parametrize(
    ("metadata", "trigger", "metric"),
    [
        (
            {"function": "embedder"},
            KafkaTrigger("wakeserve.embedder.requests", "wakeserve-embedder"),
            "kafka-lag-embedder",
        ),
        (
            {"function": "echo", "lagThreshold": "3", "consumerGroup": "mine", "scalerAddress": "scaler:9090"},
            KafkaTrigger("wakeserve.echo.requests", "mine", lag_threshold=3),
            "kafka-lag-echo",
        ),
        (
            {"topic": "orders.v1", "consumerGroup": "g", "activationLagThreshold": "2", "excludePersistentLag": "true"},
            KafkaTrigger("orders.v1", "g", activation_lag_threshold=2, exclude_persistent_lag=True),
            "kafka-lag-orders-v1",
        ),
    ],
)
def test_metadata_resolves_to_a_kafka_trigger_and_metric_name(metadata, trigger, metric):
    target = resolve(metadata, Topics())
    assert (target.trigger, target.metric_name) == (trigger, metric)


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({}, "no consumer group given"),
        ({"topic": "t"}, "no consumer group given"),
        ({"function": "Bad Name"}, "is not a function name"),
        ({"function": "echo", "lagThreshold": "ten"}, "lagThreshold"),
        ({"function": "echo", "offsetResetPolicy": "newest"}, "offsetResetPolicy"),
    ],
)
def test_invalid_metadata_is_refused_with_the_reason(metadata, reason):
    with pytest.raises(InvalidInputError, match=reason):
        resolve(metadata, Topics())


def test_scaler_settings_read_the_environment(monkeypatch):
    monkeypatch.setenv("WAKESERVE_SCALER_PORT", "9191")
    monkeypatch.setenv("WAKESERVE_SCALER_STREAM_INTERVAL_S", "0.5")
    settings = ScalerSettings()
    assert (settings.scaler_host, settings.scaler_port, settings.scaler_stream_interval_s) == ("127.0.0.1", 9191, 0.5)


class ThreadedScaler:
    """The scaler server on its own event loop in a thread; the tests are synchronous gRPC clients."""

    def __init__(self, events: EventSettings, settings: ScalerSettings) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.scaler = self.loop.run_until_complete(start_scaler_server(events, settings))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, name="scaler-under-test", daemon=True)
        self.thread.start()
        assert ready.wait(10), "scaler did not start"
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.scaler.port}")
        self.stub = ExternalScalerStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        asyncio.run_coroutine_threadsafe(self.scaler.stop(grace=0.5), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def scaler(kafka_server):
    s = ThreadedScaler(EventSettings(kafka_bootstrap=kafka_server.bootstrap), ScalerSettings(scaler_port=0))
    yield s
    s.close()


def ref(**metadata: str):
    return external.ScaledObjectRef(name=f"so-{uuid.uuid4().hex[:8]}", namespace="tests", scalerMetadata=metadata)


def status_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


@pytest.mark.integration
def test_the_four_rpcs_report_the_lag_of_a_topic(scaler: ThreadedScaler, broker: Broker):
    topic, group = broker.topic(partitions=3), unique_group()
    broker.produce(topic, {0: 34, 1: 33, 2: 33}, linger_ms=50)
    broker.commit(group, topic, {0: 10, 1: 33, 2: 30})  # lags 24 + 0 + 3
    so = ref(topic=topic, consumerGroup=group, lagThreshold="10")
    stub = scaler.stub

    (spec,) = stub.GetMetricSpec(so, timeout=10).metricSpecs
    expected_name = "kafka-lag-" + topic
    assert (spec.metricName, spec.targetSize, spec.targetSizeFloat) == (expected_name, 10, 10.0)

    (value,) = stub.GetMetrics(external.GetMetricsRequest(scaledObjectRef=so, metricName=spec.metricName)).metricValues
    assert (value.metricName, value.metricValue, value.metricValueFloat) == (expected_name, 27, 27.0)
    assert stub.IsActive(so, timeout=10).result is True

    first = next(iter(stub.StreamIsActive(so, timeout=10)))
    assert first.result is True

    # KEDA's cap: at most one replica per partition, so the metric stops at partitions * lagThreshold.
    capped = ref(topic=topic, consumerGroup=group, lagThreshold="5")
    (value,) = stub.GetMetrics(external.GetMetricsRequest(scaledObjectRef=capped, metricName="m")).metricValues
    assert (value.metricName, value.metricValue, value.metricValueFloat) == ("m", 15, 15.0)


@pytest.mark.integration
def test_function_metadata_measures_the_function_topic_and_group(scaler: ThreadedScaler, broker: Broker):
    function = f"fn-{uuid.uuid4().hex[:8]}"
    topics = Topics()
    broker.topic(partitions=1, name=topics.requests(function))
    broker.produce(topics.requests(function), {0: 7})
    broker.commit(topics.group(function), topics.requests(function), {0: 2})
    so = ref(function=function)

    (spec,) = scaler.stub.GetMetricSpec(so, timeout=10).metricSpecs
    assert (spec.metricName, spec.targetSize) == (f"kafka-lag-{function}", 10)
    request = external.GetMetricsRequest(scaledObjectRef=so, metricName=spec.metricName)
    assert scaler.stub.GetMetrics(request, timeout=10).metricValues[0].metricValue == 5


@pytest.mark.integration
def test_is_active_is_false_on_an_idle_topic_and_true_after_a_produce(scaler: ThreadedScaler, broker: Broker):
    topic, group = broker.topic(partitions=2), unique_group()
    broker.produce(topic, {0: 5})
    broker.commit(group, topic, {0: 5, 1: 0})
    so = ref(topic=topic, consumerGroup=group)

    assert scaler.stub.IsActive(so, timeout=10).result is False
    broker.produce(topic, {1: 1})
    assert scaler.stub.IsActive(so, timeout=10).result is True


@pytest.mark.integration
def test_stream_reports_activation_within_a_second_of_a_produce(scaler: ThreadedScaler, broker: Broker):
    topic, group = broker.topic(partitions=2), unique_group()
    broker.produce(topic, {0: 5})
    broker.commit(group, topic, {0: 5, 1: 0})
    stream = scaler.stub.StreamIsActive(ref(topic=topic, consumerGroup=group), timeout=20)
    try:
        assert next(stream).result is False  # the first state, at once

        producer = broker.producer()
        started = time.monotonic()
        producer.send(topic, value=b"wake up", partition=1).get(timeout=10)
        acked = time.monotonic()
        update = next(stream)
        activated = time.monotonic()
        producer.close(timeout=5)
    finally:
        stream.cancel()
    assert update.result is True
    print(f"push activation: {activated - acked:.3f}s after the ack, {activated - started:.3f}s after the send")
    assert activated - started < 1.0


@pytest.mark.integration
def test_persistent_lag_is_excluded_across_get_metrics_calls(scaler: ThreadedScaler, broker: Broker):
    topic, group = broker.topic(partitions=1), unique_group()
    broker.produce(topic, {0: 6})
    broker.commit(group, topic, {0: 2})
    so = ref(topic=topic, consumerGroup=group, excludePersistentLag="true")
    request = external.GetMetricsRequest(scaledObjectRef=so, metricName="m")

    assert scaler.stub.GetMetrics(request, timeout=10).metricValues[0].metricValue == 4
    assert scaler.stub.IsActive(so, timeout=10).result is True  # activity keeps counting the stuck lag
    assert scaler.stub.GetMetrics(request, timeout=10).metricValues[0].metricValue == 0  # consumer did not move
    broker.commit(group, topic, {0: 3})
    assert scaler.stub.GetMetrics(request, timeout=10).metricValues[0].metricValue == 3


@pytest.mark.integration
def test_invalid_metadata_is_invalid_argument(scaler: ThreadedScaler):
    bad = ref(topic="t", lagThreshold="0")
    stub = scaler.stub
    for call in (
        lambda: stub.IsActive(bad, timeout=10),
        lambda: stub.GetMetricSpec(bad, timeout=10),
        lambda: stub.GetMetrics(external.GetMetricsRequest(scaledObjectRef=bad, metricName="m"), timeout=10),
        lambda: next(stub.StreamIsActive(bad, timeout=10)),
    ):
        code, details = status_of(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "invalid scalerMetadata: no consumer group given" in details


@pytest.mark.integration
def test_a_broker_that_cannot_be_reached_is_unavailable():
    nowhere = EventSettings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    s = ThreadedScaler(nowhere, ScalerSettings(scaler_port=0, scaler_read_timeout_s=1.0))
    try:
        so = ref(topic="t", consumerGroup="g")
        code, details = status_of(lambda: s.stub.IsActive(so, timeout=10))
        assert code == grpc.StatusCode.UNAVAILABLE and "cannot read offsets of 't'" in details
        request = external.GetMetricsRequest(scaledObjectRef=so, metricName="m")
        assert status_of(lambda: s.stub.GetMetrics(request, timeout=10))[0] == grpc.StatusCode.UNAVAILABLE
        (spec,) = s.stub.GetMetricSpec(so, timeout=10).metricSpecs  # needs no broker
        assert spec.targetSize == 10
    finally:
        s.close()


@pytest.mark.integration
def test_wakeserve_scaler_serves_until_sigterm(kafka_server, broker: Broker, tmp_path):
    topic, group = broker.topic(partitions=1), unique_group()
    broker.produce(topic, {0: 3})
    port = free_port()
    # cli.py wires add_parser/run; this drives them the same way through their own parser.
    script = (
        "import argparse, sys; from wakeserve import scaler_command as c; "
        "p = argparse.ArgumentParser(); c.add_parser(p.add_subparsers(dest='command')); "
        "sys.exit(c.run(p.parse_args(sys.argv[1:])))"
    )
    argv = [sys.executable, "-c", script, "scaler", "--port", str(port), "--kafka-bootstrap", kafka_server.bootstrap]
    child = ChildProcess("scaler", argv, log_path=tmp_path / "scaler.log", cwd=ROOT)
    try:
        child.wait_until(lambda: port_open("127.0.0.1", port), timeout=30)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ExternalScalerStub(channel)
            so = ref(topic=topic, consumerGroup=group, scaleToZeroOnInvalidOffset="false", offsetResetPolicy="earliest")
            request = external.GetMetricsRequest(scaledObjectRef=so, metricName="m")
            assert stub.GetMetrics(request, timeout=10).metricValues[0].metricValue == 3
    finally:
        code = child.stop(grace=10)
    assert code == 0
    assert f"KEDA external scaler on 127.0.0.1:{port}" in (tmp_path / "scaler.log").read_text()
