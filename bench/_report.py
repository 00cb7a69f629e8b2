"""Results -> `latest.json`, `latest.md` (tables, ratios vs targets) and PNG plots.

The results dict (what `python -m bench` collects, and what `latest.json` holds):

    {"meta": {...}, "measurements": [Measurement.to_dict(), ...],
     "warmup": {"runs": [...], ...}, "info": {...}}

`ratios(results)` derives the target ratios (`TARGETS`) from the measurements;
`write_report(results, out_dir)` writes the three kinds of file.

>>> write_report(results, "bench/results")   # doctest: +SKIP
{'json': ..., 'markdown': ..., 'plots': [...]}
"""
from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

__all__ = ["TARGETS", "MEMORY_BOUND", "ratios", "find", "write_report", "render_markdown",
           "update_readme_section", "LABELS", "memory_table"]

#: (key, description, target): what the stack aims for, all at batch 32
TARGETS = {
    "grpc_vs_ceiling": ("gRPC `predict_batched` / ceiling (batch 32, same batches)", 0.90),
    "rest_vs_ceiling": ("REST `predict_batched` / ceiling (batch 32, same batches)", 0.80),
    "batching_32_clients": ("32 single-text clients: batching on / off", 2.2),
    "grpc_vs_pytorch": ("served gRPC / PyTorch in-process (batch 32, same batches)", 1.3),
    "buckets_vs_plain": ("`text` in-process, arrival order: length buckets / plain export (batch 32)", 2.0),
    "buckets_vs_sorted": ("`text` in-process, arrival order, length buckets / plain export on client-sorted "
                          "batches (batch 32)", 0.85),
    "buckets_batch1": ("`text` in-process, batch 1: length buckets / plain export (regression ≤ 5%)", 0.95),
    "bf16_vs_fp32": ("served gRPC batch 32: `--mixed_precision=bfloat16` / float32 (CPU with AMX or "
                     "AVX512-BF16)", 1.3),
}
#: target key -> the ratio that bounds it on the machine measured (a missed target names it)
BOUNDS = {"batching_32_clients": "batching_bound_32_clients"}
#: bucketing must not raise the server's peak RSS by more than this factor
MEMORY_BOUND = 1.10

LABELS = {
    "ceiling": "ceiling (SavedModel in-process)",
    "ceiling_short": "ceiling, short texts (11–15 words)",
    "ceiling_sorted": "ceiling, corpus texts sorted by length before batching",
    "ceiling_plain": "ceiling without length buckets (plain export)",
    "ceiling_plain_short": "ceiling without length buckets, short texts (11–15 words)",
    "ceiling_plain_sorted": "ceiling without length buckets, texts sorted by length by the client",
    "grpc_fp32": "served gRPC predict, float32",
    "grpc_bf16": "served gRPC predict, --mixed_precision=bfloat16",
    "pytorch": "PyTorch in-process",
    "grpc_predict": "served gRPC predict",
    "rest_predict": "served REST predict",
    "grpc_batched": "served gRPC predict_batched, corpus order",
    "rest_batched": "served REST predict_batched, corpus order",
    "grpc_batched_sorted": "served gRPC predict_batched, rows grouped by length (client default)",
    "rest_batched_sorted": "served REST predict_batched, rows grouped by length (client default)",
    "pytorch_sorted": "PyTorch in-process, texts sorted by length before batching",
    "clients_unbatched": "single-text gRPC clients, no server batching",
    "clients_batched": "single-text gRPC clients, server batching",
    "clients_unbatched_short": "single-text gRPC clients, short texts, no server batching",
    "clients_batched_short": "single-text gRPC clients, short texts, server batching",
    "tokenizer_graph": "in-graph tokenizer (tf-text)",
    "tokenizer_hf": "HF fast tokenizer",
}


# ---------------------------------------------------------------------------- lookups
def find(results: dict, name: str, **params) -> dict | None:
    """The measurement called `name` whose params include `params` (first match)."""
    for m in results.get("measurements", []):
        if m["name"] == name and all(m["params"].get(k) == v for k, v in params.items()):
            return m
    return None


def _tp(m: dict | None) -> float:
    return m["throughput"]["median"] if m else math.nan


def _best(results: dict, name: str, **params) -> dict | None:
    cands = [m for m in results.get("measurements", [])
             if m["name"] == name and all(m["params"].get(k) == v for k, v in params.items())]
    return max(cands, key=_tp) if cands else None


def _ratio(num: dict | None, den: dict | None) -> float:
    a, b = _tp(num), _tp(den)
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan


def _range_ratio(num: dict | None, den: dict | None) -> tuple[float, float]:
    """The worst and best ratio the repetitions allow (min/max vs max/min)."""
    if not num or not den:
        return (math.nan, math.nan)
    n, d = num["throughput"], den["throughput"]
    return (n["min"] / d["max"] if d["max"] else math.nan, n["max"] / d["min"] if d["min"] else math.nan)


def _describe(m: dict | None) -> str:
    if not m:
        return "n/a"
    p = m["params"]
    return f"{m['name']} bs={p.get('batch_size')} c={p.get('concurrency')}"


def _row(key: str, num: dict | None, den: dict | None, desc: str | None = None, target: float | None = None) -> dict:
    d, t = TARGETS.get(key, (desc, target))
    value = _ratio(num, den)
    lo, hi = _range_ratio(num, den)
    return {"key": key, "description": desc or d, "value": value, "range": [lo, hi],
            "target": t, "met": (value >= t) if (t is not None and math.isfinite(value)) else None,
            "numerator": _describe(num), "denominator": _describe(den)}


def ratios(results: dict, batch: int = 32) -> list[dict]:
    """Every ratio of the report: the targets first, then the informational ones."""
    return [_row(*spec) for spec in _target_specs(results, batch) + _other_specs(results, batch)]


def _target_specs(results: dict, batch: int) -> list[tuple]:
    ceiling = find(results, "ceiling", batch_size=batch)
    grpc_b = _best(results, "grpc_batched", batch_size=batch)
    return [
        ("grpc_vs_ceiling", grpc_b, ceiling),
        ("rest_vs_ceiling", _best(results, "rest_batched", batch_size=batch), ceiling),
        ("batching_32_clients", find(results, "clients_batched", concurrency=32),
         find(results, "clients_unbatched", concurrency=32)),
        ("grpc_vs_pytorch", grpc_b, find(results, "pytorch", batch_size=batch)),
        ("buckets_vs_plain", ceiling, find(results, "ceiling_plain", batch_size=batch)),
        ("buckets_vs_sorted", ceiling, find(results, "ceiling_plain_sorted", batch_size=batch)),
        ("buckets_batch1", find(results, "ceiling", batch_size=1), find(results, "ceiling_plain", batch_size=1)),
        ("bf16_vs_fp32", find(results, "grpc_bf16", batch_size=batch), find(results, "grpc_fp32", batch_size=batch)),
    ]


def _sizes(results: dict, name: str, param: str) -> list:
    return sorted({m["params"][param] for m in results.get("measurements", []) if m["name"] == name})


def _other_specs(results: dict, batch: int) -> list[tuple]:
    ceiling = find(results, "ceiling", batch_size=batch)
    grpc_b, grpc_s = _best(results, "grpc_batched", batch_size=batch), _best(results, "grpc_batched_sorted",
                                                                             batch_size=batch)
    ceiling_sorted = find(results, "ceiling_sorted", batch_size=batch)
    specs = [
        ("grpc_vs_rest", grpc_b, _best(results, "rest_batched", batch_size=batch),
         f"gRPC / REST `predict_batched` (batch {batch})"),
        ("buckets_short", find(results, "ceiling_short", batch_size=batch),
         find(results, "ceiling_plain_short", batch_size=batch),
         f"`text` in-process, short texts: length buckets / plain export (batch {batch})"),
        ("grpc_sorted_vs_ceiling_sorted", grpc_s, ceiling_sorted,
         f"length-grouped: gRPC `predict_batched` (client default) / length-sorted ceiling (batch {batch})"),
        ("rest_sorted_vs_ceiling_sorted", _best(results, "rest_batched_sorted", batch_size=batch), ceiling_sorted,
         f"length-grouped: REST `predict_batched` (client default) / length-sorted ceiling (batch {batch})"),
        ("grpc_sorted_vs_pytorch_sorted", grpc_s, find(results, "pytorch_sorted", batch_size=batch),
         f"length-grouped: gRPC `predict_batched` / PyTorch on length-sorted batches (batch {batch})"),
        ("grpc_sorted_vs_grpc", grpc_s, grpc_b,
         f"gRPC `predict_batched`: rows grouped by length / corpus order (batch {batch})"),
    ]
    for bs in _sizes(results, "ceiling", "batch_size"):
        c = find(results, "ceiling", batch_size=bs)
        specs += [(f"grpc_predict_vs_ceiling_bs{bs}", find(results, "grpc_predict", batch_size=bs), c,
                   f"gRPC `predict` (one request per batch) / ceiling, batch {bs}"),
                  (f"rest_predict_vs_ceiling_bs{bs}", find(results, "rest_predict", batch_size=bs), c,
                   f"REST `predict` (one request per batch) / ceiling, batch {bs}"),
                  (f"ceiling_vs_pytorch_bs{bs}", c, find(results, "pytorch", batch_size=bs),
                   f"ceiling / PyTorch in-process, batch {bs}")]
    specs += [(f"batching_{conc}_clients", find(results, "clients_batched", concurrency=conc),
               find(results, "clients_unbatched", concurrency=conc), f"{conc} single-text client(s): batching on / off")
              for conc in (1, 8)]
    specs += [
        ("ceiling_short_bs32_vs_bs1", find(results, "ceiling_short", batch_size=batch),
         find(results, "ceiling_short", batch_size=1),
         f"ceiling, short texts: batch {batch} / batch 1 (what batching can gain without padding)"),
        ("ceiling_sorted_vs_ceiling", ceiling_sorted, ceiling,
         f"ceiling, batch {batch}: length-sorted / corpus order (what grouping by length still adds)"),
        ("ceiling_bs32_vs_bs1", ceiling, find(results, "ceiling", batch_size=1),
         f"ceiling, corpus texts: batch {batch} / batch 1"),
    ]
    specs += [
        ("batching_bound_32_clients", ceiling, find(results, "clients_unbatched", concurrency=32),
         f"bound on batching on / off, 32 single-text clients: ceiling at batch {batch} / no server batching"),
        ("batching_bound_32_clients_short", find(results, "ceiling_short", batch_size=batch),
         find(results, "clients_unbatched_short", concurrency=32),
         f"32 single-text clients, short texts: the same bound (short-text ceiling at batch {batch} / no server "
         "batching)"),
        ("batched_clients_vs_ceiling", find(results, "clients_batched", concurrency=32), ceiling,
         f"32 single-text clients with server batching / ceiling at batch {batch} (share of the bound reached)"),
    ]
    specs += [(f"batching_{conc}_clients_short", find(results, "clients_batched_short", concurrency=conc),
               find(results, "clients_unbatched_short", concurrency=conc),
               f"{conc} single-text clients, short texts (11–15 words): batching on / off")
              for conc in _sizes(results, "clients_batched_short", "concurrency")]
    specs += [(f"tokenizer_bs{bs}", find(results, "tokenizer_graph", batch_size=bs),
               find(results, "tokenizer_hf", batch_size=bs), f"in-graph / HF fast tokenizer, batch {bs}")
              for bs in _sizes(results, "tokenizer_graph", "batch_size")]
    return specs


# ---------------------------------------------------------------------------- markdown
def _f(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def _status(row: dict, results: dict | None = None, bound: dict | None = None) -> str:
    """`bound`: the ratio row that caps this target on the machine measured (BOUNDS), if any."""
    if row["key"] == "bf16_vs_fp32" and not ((results or {}).get("info", {}).get("bf16") or {}).get("applicable"):
        flags = ", ".join(((results or {}).get("meta") or {}).get("cpu_flags") or []) or "none"
        return f"not applicable on this CPU (relevant flags: {flags})"
    if row["met"] is None:
        return "n/a" if row["target"] is not None else ""
    if row["met"]:
        return "**met**"
    if bound and math.isfinite(bound["value"]) and bound["value"] < row["target"]:
        return f"**missed**: {bound['value']:.2f} is the most this CPU allows ({bound['description']})"
    return "**missed**"


def _ratio_cell(row: dict) -> str:
    lo, hi = row["range"]
    return f"{_f(row['value'], 2)} ({_f(lo, 2)}–{_f(hi, 2)})"


def targets_table(results: dict) -> str:
    lines = ["| Ratio (batch 32) | Measured (worst–best over reps) | Target | Status |",
             "|---|---|---|---|"]
    rows = {row["key"]: row for row in ratios(results)}
    for key in TARGETS:
        row = rows[key]
        lines.append(f"| {row['description']} | {_ratio_cell(row)} | ≥ {row['target']:g} "
                     f"| {_status(row, results, rows.get(BOUNDS.get(key)))} |")
    return "\n".join(lines)


def memory_table(results: dict) -> str:
    """Server peak RSS with and without length buckets, and the bound bucketing must keep."""
    memory = results.get("memory") or {}
    if not memory.get("bucketed") or not memory.get("plain"):
        return "_not measured_"
    lines = ["| Server peak RSS, MiB (VmHWM) | length buckets | plain export | ratio | bound | status |",
             "|---|---|---|---|---|---|"]
    for key in memory["bucketed"]:
        a, b = memory["bucketed"][key], memory["plain"].get(key)
        ratio = a / b if b else math.nan
        what = "after loading" if key == "loaded" else f"after gRPC predict at {key.replace('_', ' ')}"
        status = "**met**" if ratio <= MEMORY_BOUND else "**missed**"
        lines.append(f"| {what} | {_f(a)} | {_f(b)} | {_f(ratio, 2)} | ≤ {MEMORY_BOUND:g} | {status} |")
    return "\n".join(lines)


def measurements_table(results: dict, names=None) -> str:
    lines = ["| Scenario | Batch | Concurrency | Texts/s median (min–max) | Spread | p50 ms | p95 ms | p99 ms | Reps "
             "| CPU ms/text (client + server) (cores busy) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in results.get("measurements", []):
        if names and m["name"] not in names:
            continue
        t, lat, p = m["throughput"], m["latency_ms"], m["params"]
        label = LABELS.get(m["name"], m["name"])
        if (m.get("notes") or {}).get("mean_server_batch_size") is not None:
            label += f" (server batches of {m['notes']['mean_server_batch_size']:.1f} on average)"
        lines.append(f"| {label} | {p.get('batch_size', '')} | {p.get('concurrency', '')} "
                     f"| {_f(t['median'])} ({_f(t['min'])}–{_f(t['max'])}) | ±{_f(100 * t['rel_spread'] / 2, 0)}% "
                     f"| {_f(lat['p50'])} | {_f(lat['p95'])} | {_f(lat['p99'])} | {m['repetitions']} "
                     f"| {_cpu_cell(m)} |")
    return "\n".join(lines)


def _cpu_cell(m: dict) -> str:
    notes = m.get("notes") or {}
    own, server = notes.get("cpu_ms_per_text"), notes.get("server_cpu_ms_per_text")
    if own is None:
        return ""
    cores = (own + (server or 0.0)) * m["throughput"]["median"] / 1000.0
    if server is None:
        return f"{_f(own, 2)} ({_f(cores, 2)} cores)"
    return f"{_f(own, 2)} + {_f(server, 2)} ({_f(cores, 2)} cores)"


def other_ratios_table(results: dict) -> str:
    lines = ["| Ratio | Measured (worst–best over reps) |", "|---|---|"]
    for row in ratios(results):
        if row["key"] not in TARGETS and math.isfinite(row["value"]):
            lines.append(f"| {row['description']} | {_ratio_cell(row)} |")
    return "\n".join(lines)


def warmup_table(results: dict) -> str:
    w = results.get("warmup") or {}
    runs = w.get("runs") or []
    if not runs:
        return "_not measured_"
    lines = ["| Model version | Start → AVAILABLE s | First request ms | Steady p50 ms | First / steady | Start → first answer s | Starts |",
             "|---|---|---|---|---|---|---|"]
    for variant in ("without_warmup", "with_warmup"):
        rs = [r for r in runs if r["variant"] == variant]
        if not rs:
            continue
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        label = "with warmup file" if variant == "with_warmup" else "without warmup file"
        lines.append(f"| {label} | {_f(med('start_to_available_s'), 2)} | {_f(med('first_request_ms'))} "
                     f"| {_f(med('steady_p50_ms'))} | {_f(med('first_request_ms') / med('steady_p50_ms'), 1)}× "
                     f"| {_f(med('start_to_first_answer_s'), 2)} | {len(rs)} |")
    lines.append("")
    lines.append(f"Warmup file: written by {w.get('warmup_file_source', 'the export')}; medians over the starts.")
    return "\n".join(lines)


def padding_table(results: dict) -> str:
    padding = (results.get("meta") or {}).get("padding") or {}
    if not padding:
        return ""
    items = sorted(padding.items(), key=lambda kv: int(kv[0]))
    head = "| Batch size | " + " | ".join(str(k) for k, _ in items) + " |"
    sep = "|---|" + "---|" * len(items)
    row = "| Tokens computed / real tokens | " + " | ".join(f"{v['padded_over_real']:.2f}×" for _, v in items) + " |"
    return "\n".join([head, sep, row])


def render_markdown(results: dict, plots: list[str] = (), image_prefix: str = "") -> str:
    meta = results.get("meta", {})
    corpus = meta.get("corpus", {})
    tokens = corpus.get("tokens", {})
    head = [
        f"Run: {meta.get('date', '?')} · {'quick' if meta.get('quick') else 'full'} run · "
        f"{meta.get('cpu', '?')}, {meta.get('cores', '?')} cores (flags: "
        f"{', '.join(meta.get('cpu_flags') or []) or 'n/a'}) · load average at start "
        f"{meta.get('load_start', '?')}, at end {meta.get('load_end', '?')}",
        "",
        f"Corpus: {corpus.get('texts', '?')} texts per repetition at most, {corpus.get('distinct', '?')} distinct "
        f"real English texts (bench/corpus.txt), {tokens.get('mean', '?')} tokens on average "
        f"({tokens.get('min', '?')}–{tokens.get('max', '?')}). Throughput: texts/s, median over the repetitions "
        f"(min–max); latency per request; before timing, one pass over the same texts "
        f"is run and discarded. CPU ms/text: CPU time of the measuring process (the client, or the in-process "
        f"runner) + the server process, per text; cores busy = CPU time / wall time (of "
        f"{meta.get('cores', '?')}).",
    ]
    parts = ["\n".join(head), "### Targets", targets_table(results),
             "### Memory (length buckets vs plain export)", memory_table(results),
             "### Throughput and latency", measurements_table(results),
             "### Other ratios", other_ratios_table(results),
             "### Padding (a batch is padded to its longest text)", padding_table(results) or "_not computed_",
             "### Warm-up (first request after start-up)", warmup_table(results)]
    gemm = results.get("gemm_gflops")
    if gemm:
        m, k, n = gemm["shape"]
        parts += ["### Matrix multiply, GFLOPS (bench/_gemm.py)",
                  f"[{m}, {k}] × [{k}, {n}] float32 (MiniLM's feed-forward matmul at batch 32 × 85 tokens), "
                  f"{gemm.get('torch_threads', '?')} threads:\n\n"
                  "| TensorFlow matmul (Eigen/oneDNN; the SavedModel) | PyTorch addmm (MKL; the baseline) "
                  "| numpy (OpenBLAS) |\n|---|---|---|\n"
                  f"| {_f(gemm['tensorflow_matmul'])} | {_f(gemm['torch_addmm'])} | {_f(gemm['numpy_openblas'])} |"]
    notes = results.get("notes") or []
    if notes:
        parts += ["### Notes", "\n".join(f"- {n}" for n in notes)]
    if plots:
        parts += ["### Plots", "\n".join(f"![{Path(p).stem}]({image_prefix}{Path(p).name})" for p in plots)]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------- files
def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write_report(results: dict, out_dir: str | Path, stem: str = "latest") -> dict:
    """Write `<stem>.json`, `<stem>.md` and the PNG plots into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = dict(results)
    results["ratios"] = ratios(results)
    from bench._plots import plot  # matplotlib only when plots are drawn

    plots = plot(results, out_dir)
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(_jsonable(results), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    md_path = out_dir / f"{stem}.md"
    md_path.write_text("# Benchmark results\n\n" + render_markdown(results, [str(p) for p in plots]),
                       encoding="utf-8")
    return {"json": json_path, "markdown": md_path, "plots": plots}


def update_readme_section(readme: str | Path, body: str, heading: str = "## Benchmarks") -> None:
    """Replace (or append) the `heading` section of `readme` with `body`; other sections untouched."""
    path = Path(readme)
    text = path.read_text(encoding="utf-8")
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
