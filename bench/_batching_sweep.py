"""Server-side batching parameters vs 32 concurrent single-text gRPC clients.

    python -m bench._batching_sweep [--model-dir models/minilm] [--requests 192] [--variants 2:2000,2:10000]

For each (num_batch_threads, batch_timeout_micros) it starts a server with
`--enable_batching` (max_batch_size 32), runs 32 closed-loop single-text
clients on the corpus texts and on the short texts, and prints throughput
and the mean batch size the server formed (from its Prometheus metrics).
Not part of `python -m bench` (it takes ~2 minutes); FINDINGS.md quotes it.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench import _runs
from bench._corpus import SHORT_WORDS, make_corpus
from bench._measure import measure

VARIANTS = ((2, 2000), (1, 2000), (1, 10000), (2, 10000), (1, 30000), (2, 30000))


def main(argv=None) -> None:
    from clients import GrpcClient

    from bench.__main__ import REPO, resolve_version

    p = argparse.ArgumentParser(prog="python -m bench._batching_sweep")
    p.add_argument("--model-dir", default=str(REPO / "models" / "minilm"))
    p.add_argument("--requests", type=int, default=192)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--variants", help="num_batch_threads:batch_timeout_micros pairs, comma-separated, each "
                                      "optionally :pow2 for allowed_batch_sizes 1,2,4,...,32 (the batch padded "
                                      f"up to the next; default: {','.join(f'{t}:{m}' for t, m in VARIANTS)})")
    args = p.parse_args(argv)
    variants = [_variant(v) for v in args.variants.split(",")] if args.variants else VARIANTS
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        base = resolve_version(Path(args.model_dir), Path(tmp)).parent
        print("| num_batch_threads | batch_timeout_micros | allowed_batch_sizes | texts | texts/s (2 runs) "
              "| mean server batch |")
        print("|---|---|---|---|---|---|")
        for threads, timeout, *pow2 in variants:
            allowed = "".join(f"allowed_batch_sizes: {n} " for n in (1, 2, 4, 8, 16, 32)) if pow2 else ""
            params = Path(tmp, "batching.config")
            params.write_text(f"max_batch_size {{ value: 32 }} batch_timeout_micros {{ value: {timeout} }} "
                              f"num_batch_threads {{ value: {threads} }} max_enqueued_batches {{ value: 100 }} "
                              f"{allowed}\n")
            monitoring = Path(tmp, "monitoring.config")
            monitoring.write_text(_runs.MONITORING_CONFIG)
            with _runs._server(base, "--enable_batching=true", f"--batching_parameters_file={params}",
                               f"--monitoring_config_file={monitoring}") as srv:
                pool = _runs.ClientPool(lambda: GrpcClient(srv.grpc_target, timeout=_runs.CLIENT_TIMEOUT),
                                        args.clients)
                try:
                    for label, words in (("corpus", None), ("short", SHORT_WORDS)):
                        items = [[t] for t in make_corpus(args.requests, words=words)]

                        def call(item):
                            return pool.get().predict(_runs.MODEL_NAME, item)

                        measure(call, items, concurrency=args.clients, warmup=0, repetitions=1)  # warm-up
                        pool.reset()
                        before = _runs.batch_histogram(srv.rest_url)
                        tps = []
                        for _ in range(2):
                            tps += measure(call, items, concurrency=args.clients, warmup=0, repetitions=1).throughputs
                            pool.reset()
                        after = _runs.batch_histogram(srv.rest_url)
                        mean = (after[0] - before[0]) / max(1.0, after[1] - before[1])
                        print(f"| {threads} | {timeout} | {'1,2,4,...,32' if pow2 else 'any'} | {label} | "
                              f"{statistics.median(tps):.0f} "
                              f"({', '.join(f'{x:.0f}' for x in tps)}) | {mean:.1f} |", flush=True)
                finally:
                    pool.close()


def _variant(spec: str) -> tuple:
    """"2:10000" -> (2, 10000); "2:10000:pow2" -> (2, 10000, True)."""
    threads, timeout, *rest = spec.split(":")
    if rest not in ([], ["pow2"]):
        raise SystemExit(f"--variants {spec!r}: expected THREADS:TIMEOUT_MICROS[:pow2]")
    return (int(threads), int(timeout), *(True for _ in rest))


if __name__ == "__main__":
    main()
