"""The v2 inference protocol over gRPC: ``ModelInfer`` read into a :class:`~functions.serving.tensors.V2Request`
and answered from the :class:`~functions.serving.tensors.V2Result`, without KServe's request and response objects.

Inputs come as typed contents or as ``raw_input_contents`` (what tritonclient and KServe's own client send);
outputs always go back as ``raw_output_contents``, which every v2 client reads. Shapes follow the REST rules
(non-negative integers). KServe's repository load/unload answers UNIMPLEMENTED unless the replica enables the
extension, and then asks for the admin token (PERMISSION_DENIED without it) and is logged like every
control action.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from core.errors import InvalidInputError
from functions.serving.admin import REPOSITORY_OFF, bearer_matches
from functions.serving.datatypes import numpy_to_raw
from functions.serving.runtime import served_model
from functions.serving.tensors import V2Request, V2Result, WireTensor

log = logging.getLogger("functions.serving.admin")  # control actions are logged in one place

# The typed-contents field of each datatype (FP16 has none: it travels raw only).
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def read_request(request: pb.ModelInferRequest) -> V2Request:
    """The request's tensors; ``raw_input_contents``, when given, hold every input in order."""
    raw = request.raw_input_contents
    inputs = []
    for i, tensor in enumerate(request.inputs):
        datatype, shape = tensor.datatype.upper(), [int(d) for d in tensor.shape]
        if any(d < 0 for d in shape):
            raise InvalidInputError(f"inputs[{i}].shape must be a list of non-negative integers, got {shape}")
        if raw:
            inputs.append(WireTensor(tensor.name, datatype, shape, raw=raw[i]))
            continue
        contents = CONTENTS_FIELDS.get(datatype)
        data = list(getattr(tensor.contents, contents)) if contents else []
        inputs.append(WireTensor(tensor.name, datatype, shape, data=data))
    return V2Request(
        id=request.id or None,
        inputs=inputs,
        outputs=frozenset(o.name for o in request.outputs),
        model=request.model_name,
    )


def encode_result(result: V2Result) -> pb.ModelInferResponse:
    return pb.ModelInferResponse(
        model_name=result.model_name,
        model_version=result.model_version,
        id=result.id,
        outputs=[
            pb.ModelInferResponse.InferOutputTensor(name=o.name, datatype=o.datatype, shape=list(o.array.shape))
            for o in result.outputs
        ],
        raw_output_contents=[numpy_to_raw(o.array, o.datatype) for o in result.outputs],
    )


class V2Servicer(InferenceServicer):  # type: ignore[misc]
    """KServe's gRPC servicer (health, metadata, repository) with inference served by :class:`FunctionModel`."""

    def __init__(
        self,
        data_plane: DataPlane,
        repository: ModelRepositoryExtension,
        *,
        repository_enabled: bool = False,
        admin_token: str | None = None,
    ) -> None:
        super().__init__(data_plane, repository)
        self._repository_enabled = repository_enabled
        self._admin_token = admin_token

    async def _authorize_repository(self, action: str, model: str, context: grpc.aio.ServicerContext) -> None:
        if not self._repository_enabled:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, REPOSITORY_OFF)
        metadata = dict(context.invocation_metadata() or ())
        # The inference port is reachable by strangers: without an admin token there is no way to tell an
        # operator from anyone else, so the repository extension is refused there.
        if self._admin_token is None or not bearer_matches(metadata.get("authorization"), self._admin_token):
            log.warning("admin repository %s of %s refused (no valid token) from %s", action, model, context.peer())
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "the repository extension needs the admin token")
        log.info("admin repository %s of %s by %s (gRPC)", action, model, context.peer())

    async def RepositoryModelLoad(  # noqa: N802 - the gRPC method name
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        await self._authorize_repository("load", request.model_name, context)
        return await super().RepositoryModelLoad(request, context)

    async def RepositoryModelUnload(  # noqa: N802 - the gRPC method name
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        await self._authorize_repository("unload", request.model_name, context)
        return await super().RepositoryModelUnload(request, context)

    async def ModelInfer(  # noqa: N802 - the gRPC method name
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        self.validate_grpc_request(request)  # raw contents: one per input, and no typed contents beside them
        model = served_model(self._data_plane.model_registry, request.model_name)
        return encode_result(await model.run(read_request(request)))
