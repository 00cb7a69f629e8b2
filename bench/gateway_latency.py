"""`python -m bench.gateway_latency --model-dir models/minilm [--requests 200] [--texts 1,16]`

The latency the OpenAI-compatible gateway adds per request: the same texts
embedded by calling the model server directly (`GrpcClient.predict` on the
`text` signature, what an app using our clients does) and through
`python -m gateway` in front of that server (HTTP + JSON, float and base64,
raw httpx and the `openai` package). One client, one request at a time, the
two paths interleaved so that load from elsewhere on the machine hits both
alike. Prints a Markdown table; medians and p90 in milliseconds.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from server._env import set_defaults

set_defaults()

TEXT = "The quick brown fox jumps over the lazy dog near the river bank"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(model_dir: Path, requests: int, sizes: list[int]) -> list[dict]:
    import httpx
    import openai

    from clients import GrpcClient
    from gateway import GatewayProcess
    from server import ServerProcess

    name = model_dir.name
    rows = []
    with ServerProcess([f"--model_name={name}", f"--model_base_path={model_dir}"], timeout=600) as srv, \
            GatewayProcess(["--upstream", srv.grpc_target, "--model", name, "--no-access-log"], timeout=600) as gw, \
            GrpcClient(srv.grpc_target) as direct, httpx.Client(base_url=gw.base_url, timeout=60) as http:
        sdk = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        for n in sizes:
            texts = [f"{TEXT} {i}" for i in range(n)]
            paths = {
                "direct gRPC (text signature)": lambda: direct.predict(name, {"text": texts}, signature_name="text"),
                # the gateway's second upstream call (usage), run beside the text call
                "direct gRPC (token_count signature)": lambda: direct.predict(name, {"text": texts},
                                                                              signature_name="token_count"),
                "gateway, httpx, float": lambda: http.post("/embeddings", json={
                    "model": name, "input": texts, "encoding_format": "float"}).raise_for_status(),
                "gateway, httpx, base64": lambda: http.post("/embeddings", json={
                    "model": name, "input": texts, "encoding_format": "base64"}).raise_for_status(),
                "gateway, openai package": lambda: sdk.embeddings.create(model=name, input=texts),
            }
            times: dict[str, list[float]] = {k: [] for k in paths}
            for _ in range(5):  # warm every path (connections, metadata caches)
                for call in paths.values():
                    call()
            for _ in range(requests):
                for label, call in paths.items():
                    start = time.perf_counter()
                    call()
                    times[label].append((time.perf_counter() - start) * 1e3)
            base = statistics.median(times["direct gRPC (text signature)"])
            for label, values in times.items():
                median = statistics.median(values)
                rows.append({"texts": n, "path": label, "median_ms": median, "p90_ms": percentile(values, 0.9),
                             "added_ms": median - base})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gateway_latency", description=__doc__.split("\n\n")[1])
    p.add_argument("--model-dir", type=Path, default=Path("models/minilm"),
                   help="the model's base directory (holding version directories)")
    p.add_argument("--requests", type=int, default=200, help="timed requests per path and size")
    p.add_argument("--texts", default="1,16", help="comma-separated texts per request")
    args = p.parse_args(argv)
    if not args.model_dir.is_dir():
        p.error(f"--model-dir {args.model_dir}: not a directory (export a model first: make export-model)")
    sizes = [int(s) for s in args.texts.split(",")]
    rows = measure(args.model_dir.resolve(), args.requests, sizes)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    print(f"model {args.model_dir.name}, {args.requests} requests per row, {os.cpu_count()} CPUs: {cpu}\n")
    print("| texts | path | median ms | p90 ms | added vs direct (median) ms |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['texts']} | {r['path']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['added_ms']:+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
