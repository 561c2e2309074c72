"""The KEDA external scaler contract (externalscaler.proto) and the modules protoc generates from it.

The ``*_pb2*`` files are generated: change the .proto, then run ``python -m scalers.proto.generate``.
"""
