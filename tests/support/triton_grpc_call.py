"""One ``infer`` call with tritonclient's gRPC client, run as its own process.

tritonclient and KServe compile the same v2 protocol (package ``inference``) into protobuf's one descriptor
pool, so they cannot share a process. Reads ``{"url", "model", "inputs": [{name, datatype, shape, data}],
"outputs": [names]}`` as JSON on stdin; prints ``{"id", "model_version", "outputs": {name: {datatype, shape,
data}}}``, BYTES as text.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import triton_to_np_dtype


def main() -> None:
    call = json.load(sys.stdin)
    client = triton.InferenceServerClient(url=call["url"])
    try:
        inputs = []
        for spec in call["inputs"]:
            tensor = triton.InferInput(spec["name"], spec["shape"], spec["datatype"])
            if spec["datatype"] == "BYTES":
                values = np.array([v.encode() for v in spec["data"]], dtype=object).reshape(spec["shape"])
            else:
                values = np.array(spec["data"], dtype=triton_to_np_dtype(spec["datatype"])).reshape(spec["shape"])
            tensor.set_data_from_numpy(values)
            inputs.append(tensor)
        wanted = [triton.InferRequestedOutput(name) for name in call.get("outputs", [])] or None
        result = client.infer(call["model"], inputs, outputs=wanted, request_id="triton-1")
        response = result.get_response()
        outputs = {}
        for out in response.outputs:
            array = result.as_numpy(out.name)
            data = [v.decode() for v in array.reshape(-1)] if out.datatype == "BYTES" else array.reshape(-1).tolist()
            outputs[out.name] = {"datatype": out.datatype, "shape": list(array.shape), "data": data}
        json.dump({"id": response.id, "model_version": response.model_version, "outputs": outputs}, sys.stdout)
    finally:
        client.close()


if __name__ == "__main__":
    main()
