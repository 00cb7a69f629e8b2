"""Compile this folder's `.proto` files into one `FileDescriptorSet` (`tfserving.binpb`).

Run at build time by `setup.py` (grpcio-tools is a build requirement), so an
installed client needs neither protoc nor TensorFlow; a source checkout that
was never built compiles on first use when grpcio-tools is installed (the
`[test]` extra has it). Only the standard library is imported here: `setup.py`
loads this file by path, before the package's dependencies exist.

    python clients/_protos/_compile.py            # writes clients/_protos/tfserving.binpb
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTOS = ("tensorflow.proto", "tensorflow_error.proto", "tensorflow_serving.proto")
DESCRIPTOR_SET = "tfserving.binpb"


def compile_descriptor_set(out: Path) -> Path:
    """protoc --include_imports --descriptor_set_out=out (the well-known types come with grpcio-tools)."""
    try:
        from importlib.resources import files

        from grpc_tools import protoc
    except ImportError as exc:
        raise ImportError("compiling the TF Serving protos needs grpcio-tools: pip install grpcio-tools "
                          "(or install this project with pip, which compiles them at build time)") from exc
    well_known = files("grpc_tools") / "_proto"
    out.parent.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{HERE}", f"-I{well_known}", "--include_imports",
            f"--descriptor_set_out={out}", *(str(HERE / name) for name in PROTOS)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {', '.join(PROTOS)} in {HERE}")
    return out


if __name__ == "__main__":
    print(compile_descriptor_set(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / DESCRIPTOR_SET))
