"""Regenerates the gRPC modules of externalscaler.proto: ``python -m scalers.proto.generate``.

Needs grpcio-tools (a development dependency); the generated modules need only grpcio and protobuf at run
time. The .proto is compiled from the source root so the generated imports are ``scalers.proto.…``.
"""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "scalers" / "proto" / "externalscaler.proto"
GENERATED = ("externalscaler_pb2.py", "externalscaler_pb2.pyi", "externalscaler_pb2_grpc.py")


def generate(out: Path) -> list[Path]:
    """Compiles the .proto into the source root ``out``; returns the generated files."""
    from grpc_tools import protoc

    includes = importlib.resources.files("grpc_tools") / "_proto"
    argv = [
        "protoc",
        f"-I{ROOT}",
        f"-I{includes}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(PROTO),
    ]
    if protoc.main(argv) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    return [out / "scalers" / "proto" / name for name in GENERATED]


def tools_version() -> str:
    """The grpcio-tools release installed, which the generated modules record and require at run time."""
    from grpc_tools import grpc_version

    return str(grpc_version.VERSION)


def main() -> int:
    for path in generate(ROOT):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
