"""Served gRPC at batch 32 with `--mixed_precision=bfloat16` vs float32, where the CPU has bf16.

TF Serving's bfloat16 rewrite pays off only with the CPU's bf16 instructions
(`avx512_bf16`, `amx_bf16`). Without them the scenario is not run: it
reports itself not applicable, with the CPU's flags, rather than a
meaningless ratio.
"""
from __future__ import annotations

from pathlib import Path

from bench._corpus import batches, make_corpus
from bench._measure import Measurement, measure

__all__ = ["bf16_vs_fp32"]


def bf16_vs_fp32(model_base: Path, cfg) -> tuple[list[Measurement], dict]:
    from clients import GrpcClient
    from server import cpu_bf16_flags

    from bench._runs import CLIENT_TIMEOUT, MODEL_NAME, _server

    flags = list(cpu_bf16_flags())
    if not flags:
        return [], {"applicable": False, "cpu_bf16_flags": flags,
                    "why": "the CPU has neither avx512_bf16 nor amx_bf16: grappler's oneDNN bfloat16 rewrite "
                           "leaves the graph in float32, so there is nothing to measure"}
    out = []
    items = batches(make_corpus(cfg.texts_for(32)), 32)
    for name, extra in (("grpc_fp32", ()), ("grpc_bf16", ("--mixed_precision=bfloat16",))):
        with _server(model_base, *extra) as srv, GrpcClient(srv.grpc_target, timeout=CLIENT_TIMEOUT) as client:
            out.append(measure(lambda b: client.predict(MODEL_NAME, b), items, name=name,
                               params={"batch_size": 32, "concurrency": 1}, warmup=len(items),
                               repetitions=cfg.repetitions, budget_s=cfg.budget_s))
    return out, {"applicable": True, "cpu_bf16_flags": flags}
