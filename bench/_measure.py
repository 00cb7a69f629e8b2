"""Timing: warm-up discarded, repetitions, throughput spread, latency percentiles.

`measure(call, items)` calls `call(item)` for every item, `repetitions` times
over, from `concurrency` threads (1: the caller's thread), after `warmup`
discarded calls. Each repetition gives one throughput figure (texts per
second of wall time); every call gives one latency. A `Measurement` keeps the
raw figures and summarises them: throughput median with min/max/stdev over
the repetitions, latency p50/p95/p99 over all calls.

>>> m = measure(lambda batch: None, [["a", "b"]] * 4, warmup=1, repetitions=2)
>>> m.texts, len(m.throughputs), len(m.latencies)
(8, 2, 8)
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Measurement", "measure", "percentiles", "spread", "process_cpu_seconds", "LATENCY_PERCENTILES"]

LATENCY_PERCENTILES = (50, 95, 99)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc), all threads."""
    import os

    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values: Sequence[float], qs: Sequence[float] = LATENCY_PERCENTILES) -> dict[str, float]:
    """{"p50": ..., "p95": ..., "p99": ...} of `values` (linear interpolation, as numpy)."""
    if len(values) == 0:
        return {f"p{q:g}": math.nan for q in qs}
    arr = np.asarray(values, dtype=float)
    return {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, mean, min, max, sample stdev and relative spread ((max - min) / median)."""
    if len(values) == 0:
        return {k: math.nan for k in ("median", "mean", "min", "max", "stdev", "rel_spread")}
    vals = [float(v) for v in values]
    med = statistics.median(vals)
    return {
        "median": med,
        "mean": statistics.fmean(vals),
        "min": min(vals),
        "max": max(vals),
        "stdev": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "rel_spread": (max(vals) - min(vals)) / med if med else math.nan,
    }


@dataclasses.dataclass
class Measurement:
    """One scenario at one setting: raw figures plus their summary (`to_dict`)."""

    name: str                     # e.g. "ceiling", "grpc_batched"
    params: dict[str, Any]        # e.g. {"batch_size": 32, "concurrency": 4}
    throughputs: list[float]      # texts/s, one per repetition
    latencies: list[float]        # seconds, one per request (all repetitions)
    texts: int                    # texts per repetition
    requests: int                 # requests per repetition
    warmup: int                   # calls discarded before timing
    latency_of: str = "request"   # what one latency figure covers
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Median throughput over the repetitions (texts/s)."""
        return spread(self.throughputs)["median"]

    def to_dict(self) -> dict[str, Any]:
        lat_ms = [x * 1000.0 for x in self.latencies]
        out = {
            "name": self.name,
            "params": dict(self.params),
            "texts_per_repetition": self.texts,
            "requests_per_repetition": self.requests,
            "repetitions": len(self.throughputs),
            "warmup_calls": self.warmup,
            "throughput": {**spread(self.throughputs), "values": [round(v, 3) for v in self.throughputs]},
            "latency_ms": {**percentiles(lat_ms), "mean": statistics.fmean(lat_ms) if lat_ms else math.nan,
                           "n": len(lat_ms)},
            "latency_of": self.latency_of,
        }
        if self.notes:
            out["notes"] = dict(self.notes)
        return _rounded(out)


def _rounded(obj, digits: int = 4):
    if isinstance(obj, float):
        return obj if not math.isfinite(obj) else round(obj, digits)
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v, digits) for v in obj]
    return obj


def measure(call: Callable[[Any], Any], items: Sequence[Any], *, name: str = "", params: dict | None = None,
            concurrency: int = 1, warmup: int = 2, repetitions: int = 3, size: Callable[[Any], int] = len,
            budget_s: float | None = None, progress=None, cpu_probes: dict | None = None) -> Measurement:
    """Time `call(item)` over `items`, `repetitions` times, from `concurrency` threads.

    `warmup` calls (on the first items, from the same threads) are discarded.
    `size(item)` counts the texts of an item (default `len`). When `budget_s`
    is given, no new repetition starts after that many seconds (at least one
    always runs), which bounds a scenario on a slow machine. `progress` is a
    tqdm bar (or None), advanced by one per timed call.

    CPU: the calling process's CPU time (all its threads) over the timed
    repetitions goes into `notes["cpu_ms_per_text"]`; each `cpu_probes[name]()`
    (cumulative CPU seconds of another process, e.g. the server) into
    `notes[f"{name}_cpu_ms_per_text"]`.
    """
    if not items:
        raise ValueError("measure() needs at least one item")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    texts = sum(size(item) for item in items)
    start = time.perf_counter()
    _run(call, [items[i % len(items)] for i in range(warmup)], concurrency, None)
    throughputs: list[float] = []
    latencies: list[float] = []
    probes = dict(cpu_probes or {})
    cpu0, probe0 = time.process_time(), {k: f() for k, f in probes.items()}
    for rep in range(repetitions):
        if rep and budget_s is not None and time.perf_counter() - start > budget_s:
            break
        lat: list[float] = []
        wall = _run(call, items, concurrency, lat, progress)
        throughputs.append(texts / wall)
        latencies.extend(lat)
    done = texts * len(throughputs)
    notes = {"cpu_ms_per_text": 1000.0 * (time.process_time() - cpu0) / done}
    for k, f in probes.items():
        notes[f"{k}_cpu_ms_per_text"] = 1000.0 * (f() - probe0[k]) / done
    return Measurement(name=name, params=dict(params or {}), throughputs=throughputs, latencies=latencies,
                       texts=texts, requests=len(items), warmup=warmup, notes=notes)


def _run(call, items, concurrency: int, latencies: list | None, progress=None) -> float:
    """Run every item once; returns the wall time. Latencies appended to `latencies`."""
    if not items:
        return 0.0
    clock = time.perf_counter
    if concurrency == 1:
        t0 = clock()
        for item in items:
            s = clock()
            call(item)
            e = clock()
            if latencies is not None:
                latencies.append(e - s)
                if progress is not None:
                    progress.update(1)
        return clock() - t0

    lock = threading.Lock()
    state = {"next": 0}
    errors: list[BaseException] = []
    barrier = threading.Barrier(concurrency + 1)

    def worker():
        barrier.wait()
        while True:
            with lock:
                i = state["next"]
                if i >= len(items) or errors:
                    return
                state["next"] = i + 1
            s = clock()
            try:
                call(items[i])
            except BaseException as exc:  # reported in the caller's thread
                with lock:
                    errors.append(exc)
                return
            e = clock()
            if latencies is not None:
                with lock:
                    latencies.append(e - s)
                    if progress is not None:
                        progress.update(1)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = clock()
    for t in threads:
        t.join()
    wall = clock() - t0
    if errors:
        raise errors[0]
    return wall
