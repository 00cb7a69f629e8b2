"""What a SavedModel exposes, read from saved_model.pb without loading it."""
from __future__ import annotations

from pathlib import Path

from protocol import SERVE_TAG

__all__ = ["read_signatures", "format_signatures", "directory_size", "human_size"]


def read_signatures(path: str | Path) -> dict[str, dict]:
    """{signature: {"method": ..., "inputs": {name: {dtype, shape}}, "outputs": {...}}} of the `serve` graph."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    graph = next(mg for mg in saved.meta_graphs if SERVE_TAG in mg.meta_info_def.tags)

    def tensors(infos) -> dict:
        return {
            name: {
                "dtype": types_pb2.DataType.Name(info.dtype).removeprefix("DT_").lower(),
                "shape": None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim],
            }
            for name, info in sorted(infos.items())
        }

    return {
        name: {"method": sig.method_name, "inputs": tensors(sig.inputs), "outputs": tensors(sig.outputs)}
        for name, sig in sorted(graph.signature_def.items())
        if not name.startswith("__")  # __saved_model_init_op is not a signature
    }


def _shape(shape) -> str:
    return "?" if shape is None else "[" + ", ".join("?" if d == -1 else str(d) for d in shape) + "]"


def format_signatures(signatures: dict[str, dict]) -> str:
    """A table: signature | in/out | name | dtype | shape."""
    rows = [("signature", "", "tensor", "dtype", "shape")]
    for name, sig in signatures.items():
        for direction in ("inputs", "outputs"):
            for i, (tensor, info) in enumerate(sig[direction].items()):
                label = name if direction == "inputs" and i == 0 else ""
                rows.append((label, "in" if direction == "inputs" else "out", tensor, info["dtype"], _shape(info["shape"])))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def directory_size(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")
