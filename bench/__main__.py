"""`python -m bench [--quick] [--output-dir bench/results] [--model-dir models/minilm]`

Measures the exported MiniLM model side by side - in-process ceiling, served
over gRPC and REST, with and without server-side batching, the PyTorch
baseline, the two tokenizers, the warm-up penalty - and writes
`latest.json`, `latest.md` and PNG plots into the output directory.
`--quick` runs the same scenarios with fewer texts and repetitions (< 3 min).
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
SCENARIOS = ("ceiling", "pytorch", "gemm", "tokenizer", "served", "batching", "warmup")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true", help="fewer texts and repetitions (under 3 minutes)")
    p.add_argument("--output-dir", default=str(REPO / "bench" / "results"), help="where results go")
    p.add_argument("--model-dir", default=str(REPO / "models" / "minilm"),
                   help="model base dir (latest version used) or a version dir; exported to a temp dir if missing")
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


def resolve_version(model_dir: Path, tmp: Path, log=print) -> Path:
    """A version directory: `model_dir` itself, its latest numeric child, or a fresh export."""
    if (model_dir / "saved_model.pb").exists():
        return model_dir
    versions = sorted((int(d.name), d) for d in model_dir.glob("[0-9]*")
                      if d.name.isdigit() and (d / "saved_model.pb").exists()) if model_dir.is_dir() else []
    if versions:
        return versions[-1][1]
    log(f"no exported model under {model_dir}; exporting all-MiniLM-L6-v2 into {tmp} (takes a minute or two)")
    from export import ExportOptions, export_model

    result = export_model(ExportOptions(model=checkpoint_path(), task="feature-extraction",
                                        name=_runs.MODEL_NAME, output_dir=tmp), log=lambda *a: None)
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


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = _runs.QUICK if args.quick else _runs.FULL
    started = time.perf_counter()
    out_dir = Path(args.output_dir)
    results: dict = {"measurements": [], "info": {}, "errors": {}, "notes": []}
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        version = resolve_version(Path(args.model_dir), Path(tmp))
        base = version.parent
        ckpt = checkpoint_path()
        from transformers import AutoTokenizer

        hf_tok = AutoTokenizer.from_pretrained(ckpt)
        longest = max(cfg.texts_for(bs) for bs in cfg.batch_sizes)
        results["meta"] = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "quick": args.quick, "cpu": _cpu(), "cores": os.cpu_count(), "load_start": _load(),
            "model_version_dir": str(version), "checkpoint": ckpt, "versions": _versions(),
            "corpus": corpus_stats(make_corpus(longest), hf_tok),
            "padding": {bs: padding_stats(make_corpus(cfg.texts_for(bs)), [bs], hf_tok)[bs]
                        for bs in cfg.batch_sizes},
            "config": {k: v for k, v in vars(cfg).items()},
            "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS") if k in os.environ},
        }
        print(f"bench: model {version}, {'quick' if args.quick else 'full'} run, load {_load()}", flush=True)
        sample = make_corpus(4)
        samples = {}

        def step(name, fn):
            if name.split(":")[0] not in args.only:
                return
            t0 = time.perf_counter()
            print(f"bench: {name} ...", flush=True)
            try:
                fn()
            except Exception as exc:  # keep the other scenarios' figures
                results["errors"][name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            results["info"].setdefault("durations_s", {})[name] = round(time.perf_counter() - t0, 1)

        def inproc(kind, name, **kw):
            def fn():
                out = _runs.inprocess(kind, name, cfg, **kw)
                results["measurements"].extend(out["measurements"])
                results["info"][name] = {"info": out["info"], "load_s": out["load_s"]}
                if out.get("sample"):
                    samples[name] = out["sample"]
            return fn

        def served_step(fn, key):
            def run():
                ms, info = fn(base, cfg)
                results["measurements"].extend(m.to_dict() for m in ms)
                results["info"][key] = info
            return run

        def gemm_step():
            import json
            import subprocess

            proc = subprocess.run([sys.executable, "-m", "bench._gemm"], cwd=REPO, capture_output=True, text=True,
                                  timeout=300, check=True)
            results["gemm_gflops"] = json.loads(proc.stdout.strip().splitlines()[-1])

        def warmup_step():
            results["warmup"] = _runs.warmup(version, cfg)

        step("ceiling", inproc("ceiling", "ceiling", model_path=str(version), sample_texts=sample,
                               extra_settings=_runs.short_settings(cfg, "ceiling")))
        step("pytorch", inproc("pytorch", "pytorch", checkpoint=ckpt, sample_texts=sample,
                               extra_settings=_runs.sorted_settings(cfg, "pytorch")))
        step("gemm", gemm_step)
        step("tokenizer:graph", inproc("tokenizer_graph", "tokenizer_graph", checkpoint=ckpt,
                                       batch_sizes=cfg.tokenizer_batch_sizes, texts=cfg.tokenizer_texts))
        step("tokenizer:hf", inproc("tokenizer_hf", "tokenizer_hf", checkpoint=ckpt,
                                    batch_sizes=cfg.tokenizer_batch_sizes, texts=cfg.tokenizer_texts))
        step("served", served_step(_runs.served, "served"))
        step("batching", served_step(_runs.server_batching, "batching"))
        step("warmup", warmup_step)

        check = _embedding_check(samples.get("ceiling"), samples.get("pytorch"))
        if check:
            results["info"]["ceiling_vs_pytorch_embeddings"] = check
            results["notes"].append(f"Same work: on {check['texts']} corpus texts the exported model's embeddings "
                                    f"match PyTorch's to {check['max_abs_diff']:.1e} (min cosine "
                                    f"{check['min_cosine']:.6f}).")
    results["meta"]["load_end"] = _load()
    results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
    if not results["errors"]:
        del results["errors"]
    paths = _report.write_report(results, out_dir)
    print(_report.render_markdown({**results, "ratios": _report.ratios(results)}))
    print(f"bench: wrote {paths['json']}, {paths['markdown']}, {', '.join(str(p) for p in paths['plots'])} "
          f"in {results['meta']['duration_s']} s", flush=True)
    if args.update_readme:
        _report.update_readme_section(REPO / "README.md", readme_body(results, out_dir))
        print("bench: updated the '## Benchmarks' section of README.md", flush=True)
    return 1 if results.get("errors") else 0


def readme_body(results: dict, out_dir: Path) -> str:
    try:
        prefix = out_dir.resolve().relative_to(REPO).as_posix() + "/"
    except ValueError:
        prefix = str(out_dir) + "/"
    intro = ("`make bench` (or `python -m bench`; `--quick` for a run under 3 minutes) measures the exported "
             "all-MiniLM-L6-v2 side by side on one machine in one run: the SavedModel's `text` signature "
             "in-process (the ceiling), the same through `server/` over gRPC and REST with our clients, with and "
             "without server-side batching, PyTorch in-process (what sentence-transformers does), the two "
             "tokenizers, and the first-request penalty with and without the warmup file. Full results: "
             f"[`{prefix}latest.md`]({prefix}latest.md), raw figures in `{prefix}latest.json`.")
    plots = [prefix + name for name in ("throughput_vs_batch.png", "latency_vs_concurrency.png")]
    parts = [intro, _report.render_markdown(results, []).split("\n\n")[0], "### Targets",
             _report.targets_table(results),
             "### Main figures", _report.measurements_table(results, names=(
                 "ceiling", "ceiling_short", "ceiling_sorted", "pytorch", "pytorch_sorted", "grpc_batched",
                 "grpc_batched_sorted", "rest_batched", "rest_batched_sorted", "clients_unbatched",
                 "clients_batched", "clients_unbatched_short", "clients_batched_short")),
             "\n".join(f"![{Path(p).stem}]({p})" for p in plots)]
    if FINDINGS.exists():  # hand-written: what limits each figure (kept across runs)
        parts.append(FINDINGS.read_text(encoding="utf-8").strip())
    return "\n\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
