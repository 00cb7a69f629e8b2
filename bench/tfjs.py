"""TensorFlow.js beside the SavedModel: texts/s and latency at batch 1 and 8, in one run.

    python -m bench.tfjs [--model web/models/minilm] [--savedmodel models/minilm/1] [--seconds 10]

As the TF.js team advises, each backend's first run (kernel set-up, weight upload) is
discarded before the clock starts. The JS side runs in Node with the backends the page
ships (`wasm`, and the pure-JS `cpu`); the SavedModel runs in process, loaded as TF
Serving loads it, on the same texts (bench/corpus.txt), with the tokenizer in both.
Writes bench/results/tfjs.json and tfjs.png; prints the CPU it ran on.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._corpus import make_corpus

RESULTS = Path(__file__).with_name("results")
WEB = Path(__file__).resolve().parent.parent / "web"


def cpu() -> dict:
    info = {"model": "?", "flags": []}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and info["model"] == "?":
            info["model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not info["flags"]:
            wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "wasm_simd")
            info["flags"] = [f for f in line.split(":", 1)[1].split() if f in wanted]
    info["cores"] = os.cpu_count()
    return info


def savedmodel_rows(path: Path, texts: list[str], batch_sizes: list[int], seconds: float) -> list[dict]:
    from export._serving_session import ServingSession

    session = ServingSession.load(path)
    rows = []
    try:
        for batch_size in batch_sizes:
            batch = lambda i: np.array([texts[(i * batch_size + j) % len(texts)]  # noqa: E731
                                        for j in range(batch_size)], dtype=object)
            session.run("text", {"text": batch(0)})  # warm-up, discarded
            latencies, start, i = [], time.perf_counter(), 1
            while time.perf_counter() - start < seconds or len(latencies) < 3:
                t0 = time.perf_counter()
                session.run("text", {"text": batch(i)})
                latencies.append((time.perf_counter() - t0) * 1000)
                i += 1
            elapsed = time.perf_counter() - start
            latencies.sort()
            rows.append({"runtime": "SavedModel (TF, in process)", "batch_size": batch_size,
                         "requests": len(latencies), "texts_per_s": len(latencies) * batch_size / elapsed,
                         "p50_ms": statistics.median(latencies),
                         "p90_ms": latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))]})
    finally:
        session.close()
    return rows


def tfjs_rows(model: Path, texts: list[str], backend: str, batch_sizes: list[int], seconds: float) -> list[dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(texts, f)
    try:
        done = subprocess.run(["node", str(WEB / "node.mjs"), "bench", "--model", str(model.resolve()),
                               "--texts", f.name, "--backend", backend, "--seconds", str(seconds),
                               "--batch-sizes", ",".join(map(str, batch_sizes))],
                              capture_output=True, text=True, cwd=WEB, check=True)
    finally:
        os.unlink(f.name)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return [{"runtime": f"TF.js {backend} (Node)", **row} for row in out["bench"]]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    sizes = sorted({r["batch_size"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(runtimes)
    for k, runtime in enumerate(runtimes):
        values = [next((r["texts_per_s"] for r in rows if r["runtime"] == runtime and r["batch_size"] == b), 0)
                  for b in sizes]
        ax.bar([i + k * width for i in range(len(sizes))], values, width, label=runtime)
    ax.set_xticks([i + width * (len(runtimes) - 1) / 2 for i in range(len(sizes))], [f"batch {b}" for b in sizes])
    ax.set_ylabel("texts/s")
    ax.set_title("MiniLM: TF.js in Node vs the SavedModel")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tfjs", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="web/models/minilm", help="converted model (python -m export tfjs)")
    p.add_argument("--savedmodel", default="models/minilm/1", help="the version it was converted from")
    p.add_argument("--backends", default="wasm,cpu")
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--seconds", type=float, default=10.0, help="per backend and batch size")
    p.add_argument("--texts", type=int, default=64)
    args = p.parse_args(argv)
    for path, what in ((Path(args.model) / "model.json", "--model"), (Path(args.savedmodel) / "saved_model.pb",
                                                                       "--savedmodel")):
        if not path.is_file():
            p.error(f"{what}: no {path} (make export-tfjs writes both)")
    texts = make_corpus(args.texts)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    machine = cpu()
    print(f"CPU: {machine['model']}, {machine['cores']} cores, flags: {' '.join(machine['flags']) or '-'}; "
          f"load average {os.getloadavg()[0]:.2f}")
    rows = savedmodel_rows(Path(args.savedmodel), texts, sizes, args.seconds)
    for backend in args.backends.split(","):
        rows += tfjs_rows(Path(args.model), texts, backend, sizes, args.seconds)
    base = {r["batch_size"]: r["texts_per_s"] for r in rows if r["runtime"].startswith("SavedModel")}
    print(f"\n| runtime | batch | texts/s | p50 ms | p90 ms | vs SavedModel |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['runtime']} | {r['batch_size']} | {r['texts_per_s']:.1f} | {r['p50_ms']:.1f} | "
              f"{r['p90_ms']:.1f} | {r['texts_per_s'] / base[r['batch_size']]:.2f}x |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tfjs.json").write_text(json.dumps({"cpu": machine, "rows": rows}, indent=2) + "\n")
    plot(rows, RESULTS / "tfjs.png")
    print(f"\nwrote {RESULTS / 'tfjs.json'} and {RESULTS / 'tfjs.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
