"""The committed gRPC modules are what protoc generates from scalers/proto/externalscaler.proto today."""

from __future__ import annotations

import pytest

from scalers.proto import externalscaler_pb2, externalscaler_pb2_grpc, generate


def test_regenerating_from_the_proto_gives_the_committed_files(tmp_path):
    pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools (a development dependency) generates the modules")
    if generate.tools_version() != externalscaler_pb2_grpc.GRPC_GENERATED_VERSION:
        pytest.skip(
            f"the modules were generated with grpcio-tools {externalscaler_pb2_grpc.GRPC_GENERATED_VERSION} and "
            f"{generate.tools_version()} is installed: its output differs in version stamps"
        )
    regenerated = generate.generate(tmp_path)
    assert [p.name for p in regenerated] == list(generate.GENERATED)
    for fresh in regenerated:
        committed = generate.PROTO.parent / fresh.name
        assert fresh.read_text() == committed.read_text(), (
            f"{committed.name} is stale: python -m scalers.proto.generate"
        )


def test_the_generated_service_keeps_the_names_keda_calls():
    # The file moved under scalers/proto/; the wire names (package, service, methods) must not move with it.
    service = externalscaler_pb2.DESCRIPTOR.services_by_name["ExternalScaler"]
    assert service.full_name == "externalscaler.ExternalScaler"
    assert sorted(service.methods_by_name) == ["GetMetricSpec", "GetMetrics", "IsActive", "StreamIsActive"]
