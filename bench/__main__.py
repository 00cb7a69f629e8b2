"""`python -m bench [--quick] [--output-dir bench/results] [--model-dir models/minilm]`

Measures the exported MiniLM model side by side - in-process ceiling with and
without length buckets in the graph (`--plain-model-dir`: the same export with
`--no-length-buckets`), served over gRPC and REST, with and without
server-side batching, the server's peak RSS, bf16 vs float32 (where the CPU
has bf16), the PyTorch baseline, the two tokenizers, the warm-up penalty -
and writes `latest.json`, `latest.md` and PNG plots into the output directory.
`--quick` runs the same scenarios with fewer texts and repetitions.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

from server._env import set_defaults as set_env_defaults

set_env_defaults()
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from bench import _report, _runs  # noqa: E402
from bench._corpus import corpus_stats, make_corpus, padding_stats  # noqa: E402
from bench._inprocess import checkpoint_path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FINDINGS = REPO / "bench" / "FINDINGS.md"
SCENARIOS = ("ceiling", "buckets", "pytorch", "gemm", "tokenizer", "served", "batching", "memory", "bf16", "warmup")
#: /proc/cpuinfo flags that decide the speed of the matmuls (and whether bf16 can pay off)
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true", help="fewer texts and repetitions (under 3 minutes)")
    p.add_argument("--output-dir", default=str(REPO / "bench" / "results"), help="where results go")
    p.add_argument("--model-dir", default=str(REPO / "models" / "minilm"),
                   help="model base dir (latest version used) or a version dir; exported to a temp dir if missing")
    p.add_argument("--plain-model-dir", default=str(REPO / "models" / "minilm_plain"),
                   help="the same model exported with --no-length-buckets (the 'buckets' and 'memory' "
                        "scenarios' baseline); exported to a temp dir if missing")
    p.add_argument("--only", default=",".join(SCENARIOS),
                   help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    p.add_argument("--update-readme", action="store_true",
                   help="also rewrite the '## Benchmarks' section of README.md from this run")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        p.error(f"--only: unknown scenario(s) {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    return args


def resolve_version(model_dir: Path, tmp: Path, log=print, length_buckets: bool = True) -> Path:
    """A version directory: `model_dir` itself, its latest numeric child, or a fresh export."""
    if (model_dir / "saved_model.pb").exists():
        return model_dir
    versions = sorted((int(d.name), d) for d in model_dir.glob("[0-9]*")
                      if d.name.isdigit() and (d / "saved_model.pb").exists()) if model_dir.is_dir() else []
    if versions:
        return versions[-1][1]
    log(f"no exported model under {model_dir}; exporting all-MiniLM-L6-v2 into {tmp} (takes a minute or two)")
    from export import ExportOptions, export_model

    out = Path(tmp) / ("bucketed" if length_buckets else "plain")
    result = export_model(ExportOptions(model=checkpoint_path(), task="feature-extraction", name=_runs.MODEL_NAME,
                                        output_dir=out, length_buckets=length_buckets, verify=length_buckets),
                          log=lambda *a: None)
    return Path(result.path)


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in CPU_FLAGS if f in flags]
    except OSError:
        pass
    return []


def _versions() -> dict:
    out = {"python": platform.python_version()}
    from importlib import metadata

    for pkg in ("tensorflow", "tensorflow-text", "tensorflow-serving-api", "torch", "transformers", "grpcio"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _embedding_check(a, b) -> dict | None:
    if not a or not b:
        return None
    import numpy as np

    x, y = np.asarray(a), np.asarray(b)
    cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    return {"texts": len(x), "max_abs_diff": float(np.abs(x - y).max()), "min_cosine": float(cos.min())}


class Bench:
    """One run: its config, the results it collects, and how a scenario step is run."""

    def __init__(self, args: argparse.Namespace, cfg):
        self.args, self.cfg = args, cfg
        self.results: dict = {"measurements": [], "info": {}, "errors": {}, "notes": []}
        self.samples: dict = {}

    def step(self, name: str, fn) -> None:
        """Run scenario `name` if selected; an exception is recorded, the other scenarios go on."""
        if name.split(":")[0] not in self.args.only:
            return
        t0 = time.perf_counter()
        print(f"bench: {name} ...", flush=True)
        try:
            fn()
        except Exception as exc:  # keep the other scenarios' figures
            self.results["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        self.results["info"].setdefault("durations_s", {})[name] = round(time.perf_counter() - t0, 1)

    def inprocess(self, kind: str, name: str, **kwargs) -> None:
        out = _runs.inprocess(kind, name, self.cfg, **kwargs)
        self.results["measurements"].extend(out["measurements"])
        self.results["info"][name] = {"info": out["info"], "load_s": out["load_s"]}
        if out.get("sample"):
            self.samples[name] = out["sample"]

    def served(self, fn, key: str, *args) -> None:
        measurements, info = fn(*args, self.cfg)
        self.results["measurements"].extend(m.to_dict() for m in measurements)
        self.results["info"][key] = info

    def gemm(self) -> None:
        import json
        import subprocess

        proc = subprocess.run([sys.executable, "-m", "bench._gemm"], cwd=REPO, capture_output=True, text=True,
                              timeout=300, check=True)
        self.results["gemm_gflops"] = json.loads(proc.stdout.strip().splitlines()[-1])

    def memory(self, bases: dict) -> None:
        from bench._memory import peak_rss

        self.results["memory"] = peak_rss(bases, self.cfg)


def scenarios(run: Bench, version: Path, plain: Path | None, ckpt: str) -> list[tuple[str, object]]:
    """Every step of a run, in order: (name, no-argument callable)."""
    from bench._bf16 import bf16_vs_fp32

    cfg, sample, base = run.cfg, make_corpus(4), version.parent
    steps = [
        ("ceiling", lambda: run.inprocess("ceiling", "ceiling", model_path=str(version), sample_texts=sample,
                                          extra_settings=_runs.short_settings(cfg, "ceiling"))),
        ("buckets", lambda: run.inprocess("ceiling", "ceiling_plain", model_path=str(plain),
                                          batch_sizes=cfg.bucket_batch_sizes,
                                          extra_settings=_runs.short_settings(cfg, "ceiling_plain"))),
        ("pytorch", lambda: run.inprocess("pytorch", "pytorch", checkpoint=ckpt, sample_texts=sample,
                                          extra_settings=_runs.sorted_settings(cfg, "pytorch"))),
        ("gemm", run.gemm),
        ("tokenizer:graph", lambda: run.inprocess("tokenizer_graph", "tokenizer_graph", checkpoint=ckpt,
                                                  batch_sizes=cfg.tokenizer_batch_sizes, texts=cfg.tokenizer_texts)),
        ("tokenizer:hf", lambda: run.inprocess("tokenizer_hf", "tokenizer_hf", checkpoint=ckpt,
                                               batch_sizes=cfg.tokenizer_batch_sizes, texts=cfg.tokenizer_texts)),
        ("served", lambda: run.served(_runs.served, "served", base)),
        ("batching", lambda: run.served(_runs.server_batching, "batching", base)),
        ("memory", lambda: run.memory({"bucketed": base, "plain": plain.parent})),
        ("bf16", lambda: run.served(bf16_vs_fp32, "bf16", base)),
        ("warmup", lambda: run.results.__setitem__("warmup", _runs.warmup(version, cfg))),
    ]
    return steps


def collect_meta(args, cfg, version: Path, plain: Path | None, ckpt: str) -> dict:
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(ckpt)
    longest = max(cfg.texts_for(bs) for bs in cfg.batch_sizes)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick, "cpu": _cpu(), "cpu_flags": _cpu_flags(), "cores": os.cpu_count(),
        "load_start": _load(), "model_version_dir": str(version),
        "plain_model_version_dir": str(plain) if plain else None, "checkpoint": ckpt, "versions": _versions(),
        "corpus": corpus_stats(make_corpus(longest), hf_tok),
        "padding": {bs: padding_stats(make_corpus(cfg.texts_for(bs)), [bs], hf_tok)[bs] for bs in cfg.batch_sizes},
        "config": {k: v for k, v in vars(cfg).items()},
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS") if k in os.environ},
    }


def add_embedding_note(run: Bench) -> None:
    check = _embedding_check(run.samples.get("ceiling"), run.samples.get("pytorch"))
    if check:
        run.results["info"]["ceiling_vs_pytorch_embeddings"] = check
        run.results["notes"].append(f"Same work: on {check['texts']} corpus texts the exported model's embeddings "
                                    f"match PyTorch's to {check['max_abs_diff']:.1e} (min cosine "
                                    f"{check['min_cosine']:.6f}).")


def finish(run: Bench, started: float) -> int:
    """Write the report (and the README section); the exit status."""
    results, out_dir = run.results, Path(run.args.output_dir)
    results["meta"]["load_end"] = _load()
    results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
    if not results["errors"]:
        del results["errors"]
    paths = _report.write_report(results, out_dir)
    print(_report.render_markdown({**results, "ratios": _report.ratios(results)}))
    print(f"bench: wrote {paths['json']}, {paths['markdown']}, {', '.join(str(p) for p in paths['plots'])} "
          f"in {results['meta']['duration_s']} s", flush=True)
    if run.args.update_readme:
        _report.update_readme_section(REPO / "README.md", readme_body(results, out_dir))
        print("bench: updated the '## Benchmarks' section of README.md", flush=True)
    return 1 if results.get("errors") else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    run = Bench(args, _runs.QUICK if args.quick else _runs.FULL)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        version = resolve_version(Path(args.model_dir), Path(tmp))
        plain = (resolve_version(Path(args.plain_model_dir), Path(tmp), length_buckets=False)
                 if {"buckets", "memory"} & set(args.only) else None)
        ckpt = checkpoint_path()
        run.results["meta"] = collect_meta(args, run.cfg, version, plain, ckpt)
        print(f"bench: model {version}, {'quick' if args.quick else 'full'} run, load {_load()}, "
              f"CPU {run.results['meta']['cpu']} ({', '.join(run.results['meta']['cpu_flags']) or 'no bf16/AMX'})",
              flush=True)
        for name, fn in scenarios(run, version, plain, ckpt):
            run.step(name, fn)
        add_embedding_note(run)
    return finish(run, started)


def readme_body(results: dict, out_dir: Path) -> str:
    try:
        prefix = out_dir.resolve().relative_to(REPO).as_posix() + "/"
    except ValueError:
        prefix = str(out_dir) + "/"
    intro = ("`make bench` (or `python -m bench`; `--quick` for a short run) measures the exported "
             "all-MiniLM-L6-v2 side by side on one machine in one run: the SavedModel's `text` signature "
             "in-process (the ceiling) with length buckets in the graph (the default export) and without "
             "(`--no-length-buckets`), the same through `server/` over gRPC and REST with our clients, with and "
             "without server-side batching, the server's peak RSS, bf16 vs float32 where the CPU has bf16, "
             "PyTorch in-process (what sentence-transformers does), the two tokenizers, and the first-request "
             "penalty with and without the warmup file (`--only` picks scenarios). Full results: "
             f"[`{prefix}latest.md`]({prefix}latest.md), raw figures in `{prefix}latest.json`.")
    plots = [prefix + name for name in ("length_buckets.png", "throughput_vs_batch.png", "latency_vs_concurrency.png")
             if (out_dir / name).exists()]
    parts = [intro, _report.render_markdown(results, []).split("\n\n")[0], "### Targets",
             _report.targets_table(results),
             "### Memory", _report.memory_table(results),
             "### Main figures", _report.measurements_table(results, names=(
                 "ceiling", "ceiling_plain", "ceiling_plain_sorted", "ceiling_short", "ceiling_plain_short",
                 "ceiling_sorted", "pytorch", "pytorch_sorted", "grpc_batched",
                 "grpc_batched_sorted", "rest_batched", "rest_batched_sorted", "clients_unbatched",
                 "clients_batched", "clients_unbatched_short", "clients_batched_short")),
             "\n".join(f"![{Path(p).stem}]({p})" for p in plots)]
    if FINDINGS.exists():  # hand-written: what limits each figure (kept across runs)
        parts.append(FINDINGS.read_text(encoding="utf-8").strip())
    return "\n\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
