"""Server peak memory (VmHWM) with and without length bucketing in the graph.

    peak_rss({"bucketed": base, "plain": plain_base}, cfg)

For each model base directory, one `python -m server` (no batching) gets
gRPC `predict` requests of `cfg.rss_batch_sizes` texts each, in increasing
batch size, mixed corpus in arrival order; after each batch size the server's
peak resident set size so far (`/proc/PID/status` VmHWM, which only grows) is
read. Bucketing runs the encoder on sub-batches, so its activations are those
of the largest sub-batch, not of the whole padded batch.
"""
from __future__ import annotations

from pathlib import Path

from bench._corpus import batches, make_corpus

__all__ = ["peak_rss", "vm_hwm_mib"]


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size of process `pid` so far, MiB (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def peak_rss(model_bases: dict[str, Path], cfg) -> dict:
    """{variant: {"loaded": MiB, "batch_32": MiB, "batch_128": MiB}} for each model base."""
    from clients import GrpcClient

    from bench._runs import CLIENT_TIMEOUT, MODEL_NAME, _server

    out = {}
    for variant, base in model_bases.items():
        with _server(base) as srv, GrpcClient(srv.grpc_target, timeout=CLIENT_TIMEOUT) as client:
            client.predict(MODEL_NAME, ["connect and fetch the signature"])
            row = {"loaded": round(vm_hwm_mib(srv.pid), 1)}
            for bs in cfg.rss_batch_sizes:
                for batch in batches(make_corpus(bs * cfg.rss_batches), bs):
                    client.predict(MODEL_NAME, batch)
                row[f"batch_{bs}"] = round(vm_hwm_mib(srv.pid), 1)
            out[variant] = row
    return out
