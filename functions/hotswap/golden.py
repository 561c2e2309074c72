"""Record a function's golden inputs and outputs from its packaged model: ``python -m functions.hotswap.golden NAME``.

The golden file ships beside the function (``functions/<name>/golden.json``); every candidate version must
reproduce it within its tolerance before it may take traffic (see :mod:`functions.hotswap.gates`).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from functions import catalog
from functions.hotswap.gates import dump_tensor
from functions.hotswap.watch import package_dir

INPUTS = {
    "echo": [{"x": np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]], dtype=np.float32)}],
    "classifier": [
        {"text": np.array([b"where is my parcel", b"I was charged twice this month"], dtype=object)},
        {"text": np.array([b"the app crashes when I log in", b"please change my email address"], dtype=object)},
    ],
    "embedder": [{"text": np.array([b"a sentence to embed", b"another, different one"], dtype=object)}],
}
TOLERANCE = {"echo": (0.0, 0.0), "classifier": (1e-3, 1e-3), "embedder": (1e-4, 1e-3)}


def record(name: str) -> dict[str, object]:
    function = catalog.create(name)
    function.load(None)
    specs = {s.name: s.datatype for s in (*function.inputs, *function.outputs)}
    cases = []
    for inputs in INPUTS[name]:
        outputs = function.infer(inputs)
        cases.append(
            {
                "inputs": {k: dump_tensor(v, specs[k]) for k, v in inputs.items()},
                "outputs": {k: dump_tensor(np.asarray(v), specs[k]) for k, v in outputs.items()},
            }
        )
    atol, rtol = TOLERANCE[name]
    return {"atol": atol, "rtol": rtol, "version": function.version, "cases": cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("function", choices=sorted(INPUTS))
    args = parser.parse_args()
    path = package_dir(args.function) / "golden.json"
    path.write_text(json.dumps(record(args.function), indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
