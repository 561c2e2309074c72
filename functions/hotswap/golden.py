"""Record a function's golden inputs and outputs from its packaged model: ``python -m functions.hotswap.golden NAME``.

The golden file ships beside the function (``functions/<name>/golden.json``); every candidate version must
reproduce it within its tolerance before it may take traffic (see :mod:`functions.hotswap.gates`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from functions import catalog
from functions.hotswap.gates import dump_tensor
from functions.hotswap.watch import package_dir

INPUTS = {
    "classifier": [
        {"text": np.array([b"where is my parcel", b"I was charged twice this month"], dtype=object)},
        {"text": np.array([b"the app crashes when I log in", b"please change my email address"], dtype=object)},
    ],
    "embedder": [{"text": np.array([b"a sentence to embed", b"another, different one"], dtype=object)}],
}
TOLERANCE = {"classifier": (1e-3, 1e-3), "embedder": (1e-4, 1e-3)}


def record(name: str) -> dict[str, object]:
    function = catalog.create(name)
    function.load(None)
    specs = {s.name: s.datatype for s in (*function.inputs, *function.outputs)}
    cases = []
    for inputs in INPUTS.get(name) or function.golden_inputs():
        outputs = function.infer(inputs)
        cases.append(
            {
                "inputs": {k: dump_tensor(v, specs[k]) for k, v in inputs.items()},
                "outputs": {k: dump_tensor(np.asarray(v), specs[k]) for k, v in outputs.items()},
            }
        )
    atol, rtol = TOLERANCE.get(name, (function.golden_tolerance.atol, function.golden_tolerance.rtol))
    return {"atol": atol, "rtol": rtol, "version": function.version, "cases": cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("function", help="a built-in function or one registered (docs/functions.md)")
    parser.add_argument("--output", help="where to write the file (default: golden.json beside the function)")
    args = parser.parse_args()
    if args.function not in catalog.FUNCTIONS:
        parser.error(f"unknown function {args.function!r}; known: {', '.join(sorted(catalog.FUNCTIONS))}")
    path = Path(args.output) if args.output else package_dir(args.function) / "golden.json"
    path.write_text(json.dumps(record(args.function), indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
