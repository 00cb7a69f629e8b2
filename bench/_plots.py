"""The PNG plots of a bench run, one function per figure.

>>> plot(results, Path("bench/results"))   # doctest: +SKIP
[PosixPath('bench/results/throughput_vs_batch.png'), ...]
"""
from __future__ import annotations

from pathlib import Path

from bench._report import LABELS, _best, _tp, find

__all__ = ["plot"]


def plot(results: dict, out_dir: Path) -> list[Path]:
    """Every figure of `results` written into `out_dir`; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    figures = (("throughput_vs_batch.png", throughput_vs_batch), ("latency_vs_concurrency.png", latency_vs_concurrency),
               ("length_buckets.png", length_buckets))
    paths = []
    for name, draw in figures:
        fig = draw(results)
        if fig is None:
            continue
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        paths.append(out_dir / name)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return paths


def _errorbars(points: list[tuple[int, dict]]):
    """x, median y and (below, above) error bars from (x, throughput summary) points."""
    xs = [x for x, _ in points]
    ys = [t["median"] for _, t in points]
    return xs, ys, [[t["median"] - t["min"] for _, t in points], [t["max"] - t["median"] for _, t in points]]


def _log2_axis(ax, ticks, label: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ticks))
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel(label)
    ax.grid(True, alpha=0.3)


def throughput_vs_batch(results: dict):
    import matplotlib.pyplot as plt

    ms = results.get("measurements", [])
    fig, ax = plt.subplots(figsize=(10.5, 4.5))
    for name, style in (("ceiling", "o-"), ("ceiling_plain", "o:"), ("grpc_predict", "s-"), ("rest_predict", "^-"),
                        ("pytorch", "d--")):
        pts = sorted((m["params"]["batch_size"], m["throughput"]) for m in ms if m["name"] == name)
        if pts:
            xs, ys, err = _errorbars(pts)
            ax.errorbar(xs, ys, yerr=err, fmt=style, capsize=3, label=LABELS[name])
    for name, marker in (("grpc_batched", "*"), ("rest_batched", "P"), ("grpc_batched_sorted", "X"),
                         ("ceiling_sorted", "D"), ("ceiling_plain_sorted", "v"), ("pytorch_sorted", "d")):
        best = _best(results, name)
        if best:
            conc = f" (c={best['params']['concurrency']})" if name.startswith(("grpc", "rest")) else ""
            ax.plot([best["params"]["batch_size"]], [_tp(best)], marker, markersize=10, linestyle="none",
                    label=f"{LABELS[name]}{conc}")
    _log2_axis(ax, (1, 8, 32, 64), "batch size (texts per request)")
    ax.set_ylabel("texts / s (median, min–max bars)")
    ax.set_ylim(bottom=0)
    ax.set_title("MiniLM throughput vs batch size")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def latency_vs_concurrency(results: dict):
    import matplotlib.pyplot as plt

    ms = results.get("measurements", [])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    plotted = False
    for name, color in (("clients_unbatched", "tab:red"), ("clients_batched", "tab:green")):
        pts = sorted((m["params"]["concurrency"], m) for m in ms if m["name"] == name)
        if not pts:
            continue
        plotted = True
        batching = "batching" if name == "clients_batched" else "no batching"
        for q, style in (("p50", "o-"), ("p95", "s:"), ("p99", "^--")):
            ax1.plot([c for c, _ in pts], [m["latency_ms"][q] for _, m in pts], style, color=color,
                     label=f"{batching} {q}")
        xs, ys, err = _errorbars([(c, m["throughput"]) for c, m in pts])
        ax2.errorbar(xs, ys, yerr=err, fmt="o-", color=color, capsize=3, label=f"server {batching}")
    for name, color in (("clients_unbatched_short", "tab:red"), ("clients_batched_short", "tab:green")):
        pts = sorted((m["params"]["concurrency"], m) for m in ms if m["name"] == name)
        if pts:
            plotted = True
            ax2.plot([c for c, _ in pts], [m["throughput"]["median"] for _, m in pts], "x", color=color,
                     markersize=10, linestyle="none",
                     label=("server batching" if "_batched" in name else "no server batching") + ", short texts")
    for ax in (ax1, ax2):
        _log2_axis(ax, (1, 8, 32), "concurrent single-text gRPC clients")
    ax1.set_ylabel("request latency, ms")
    ax1.set_yscale("log")
    ax1.set_title("Latency vs concurrency")
    ax2.set_ylabel("texts / s")
    ax2.set_ylim(bottom=0)
    ax2.set_title("Throughput vs concurrency")
    if plotted:
        ax1.legend(fontsize=7)
        ax2.legend(fontsize=8)
    return fig


def length_buckets(results: dict):
    """Bars: the `text` signature with and without length buckets, and the client-sorted ceiling."""
    import matplotlib.pyplot as plt

    groups = [("mixed, batch 32", ("ceiling_plain", 32), ("ceiling", 32), ("ceiling_plain_sorted", 32)),
              ("short, batch 32", ("ceiling_plain_short", 32), ("ceiling_short", 32), None),
              ("mixed, batch 1", ("ceiling_plain", 1), ("ceiling", 1), None)]
    bars = [(label, [find(results, n, batch_size=bs) if (n and bs) else None
                     for n, bs in (plain, bucketed, ceiling or (None, None))])
            for label, plain, bucketed, ceiling in groups]
    if not any(m for _, ms in bars for m in ms):
        return None
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    width = 0.27
    for i, (series, color) in enumerate((("plain export", "tab:red"), ("length buckets", "tab:green"),
                                         ("plain export, client-sorted", "tab:gray"))):
        xs = [g + (i - 1) * width for g, (_, ms) in enumerate(bars) if ms[i]]
        ms = [ms[i] for _, ms in bars if ms[i]]
        if ms:
            xs_, ys, err = _errorbars([(x, m["throughput"]) for x, m in zip(xs, ms)])
            ax.bar(xs_, ys, width, yerr=err, capsize=3, color=color, label=series)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([label for label, _ in bars])
    ax.set_ylabel("texts / s in-process (median, min–max bars)")
    ax.set_title("`text` signature: length buckets in the graph vs plain")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fig
