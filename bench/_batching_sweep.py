"""Server-side batching parameters vs closed-loop single-text gRPC clients.

    python -m bench._batching_sweep [--model-dir models/minilm] [--requests 256] [--clients 1,32]
                                    [--variants off,2:2000,2:10000]

For each variant (`off`: no `--enable_batching`; otherwise num_batch_threads:
batch_timeout_micros, max_batch_size 32) it starts a server, runs closed-loop
single-text clients (each count in `--clients`) on the corpus texts and on
the short texts, and prints throughput, latency and the mean batch size the
server formed (from its Prometheus metrics). Variants run one after the other
in one process, so their ratios compare. Not part of `python -m bench` (a few
minutes); FINDINGS.md and docker/config/batching.config quote it.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench import _runs
from bench._corpus import SHORT_WORDS, make_corpus
from bench._measure import measure, percentiles

VARIANTS = ("off", "2:2000", "2:10000", "1:10000", "2:30000")


def main(argv=None) -> None:
    from bench.__main__ import REPO, resolve_version

    p = argparse.ArgumentParser(prog="python -m bench._batching_sweep")
    p.add_argument("--model-dir", default=str(REPO / "models" / "minilm"))
    p.add_argument("--requests", type=int, default=256)
    p.add_argument("--clients", type=_counts, default="1,32", help="comma-separated client counts (default: 1,32)")
    p.add_argument("--variants", type=_variants, default=",".join(VARIANTS),
                   help="comma-separated: `off` (no server batching) or num_batch_threads:batch_timeout_micros, "
                        "optionally :pow2 for allowed_batch_sizes 1,2,4,...,32 (the batch padded up to the next; "
                        f"default: {','.join(VARIANTS)})")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        base = resolve_version(Path(args.model_dir), Path(tmp)).parent
        print("| num_batch_threads | batch_timeout_micros | allowed_batch_sizes | texts | clients "
              "| texts/s (2 runs) | p50 ms | p95 ms | mean server batch |")
        print("|---|---|---|---|---|---|---|---|---|")
        for variant in args.variants:
            for row in _run_variant(Path(tmp), base, variant, args.clients, args.requests):
                print(row, flush=True)


def _run_variant(tmp: Path, base: Path, variant, clients: list[int], requests: int):
    from clients import GrpcClient

    monitoring = tmp / "monitoring.config"
    monitoring.write_text(_runs.MONITORING_CONFIG)
    flags = [f"--monitoring_config_file={monitoring}"]
    if variant is not None:
        threads, timeout, pow2 = variant
        allowed = "".join(f"allowed_batch_sizes: {n} " for n in (1, 2, 4, 8, 16, 32)) if pow2 else ""
        params = tmp / "batching.config"
        params.write_text(f"max_batch_size {{ value: 32 }} batch_timeout_micros {{ value: {timeout} }} "
                          f"num_batch_threads {{ value: {threads} }} max_enqueued_batches {{ value: 100 }} "
                          f"{allowed}\n")
        flags += ["--enable_batching=true", f"--batching_parameters_file={params}"]
        head = f"| {threads} | {timeout} | {'1,2,4,...,32' if pow2 else 'any'} |"
    else:
        head = "| off | – | – |"
    with _runs._server(base, *flags) as srv:
        pool = _runs.ClientPool(lambda: GrpcClient(srv.grpc_target, timeout=_runs.CLIENT_TIMEOUT), max(clients))
        try:
            for label, words in (("corpus", None), ("short", SHORT_WORDS)):
                items = [[t] for t in make_corpus(requests, words=words)]

                def call(item):
                    return pool.get().predict(_runs.MODEL_NAME, item)

                for n in clients:
                    measure(call, items, concurrency=n, warmup=0, repetitions=1)  # warm-up
                    pool.reset()
                    before = _runs.batch_histogram(srv.rest_url)
                    tps, lat = [], []
                    for _ in range(2):
                        m = measure(call, items, concurrency=n, warmup=0, repetitions=1)
                        tps += m.throughputs
                        lat += m.latencies
                        pool.reset()
                    after = _runs.batch_histogram(srv.rest_url)
                    mean = (f"{(after[0] - before[0]) / max(1.0, after[1] - before[1]):.1f}"
                            if variant is not None else "–")
                    pct = percentiles([x * 1000.0 for x in lat], (50, 95))
                    yield (f"{head} {label} | {n} | {statistics.median(tps):.0f} "
                           f"({', '.join(f'{x:.0f}' for x in tps)}) | {pct['p50']:.1f} | {pct['p95']:.1f} | {mean} |")
        finally:
            pool.close()


def _variants(text: str) -> list:
    """"off,2:10000,2:10000:pow2" -> [None, (2, 10000, False), (2, 10000, True)]."""
    out = []
    for spec in text.split(","):
        threads, _, rest = spec.partition(":")
        timeout, _, pow2 = rest.partition(":")
        if spec != "off" and not (threads.isdigit() and timeout.isdigit() and pow2 in ("", "pow2")):
            raise argparse.ArgumentTypeError(f"{spec!r}: expected off or THREADS:TIMEOUT_MICROS[:pow2]")
        out.append(None if spec == "off" else (int(threads), int(timeout), bool(pow2)))
    return out


def _counts(text: str) -> list[int]:
    counts = text.split(",")
    if not all(c.isdigit() and int(c) > 0 for c in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive integers, comma-separated")
    return [int(c) for c in counts]


if __name__ == "__main__":
    main()
