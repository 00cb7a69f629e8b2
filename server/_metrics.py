"""Prometheus metrics (`--monitoring_config_file` with `prometheus_config`).

TF Serving's own request metrics keep their names and labels
(`:tensorflow:serving:request_count{model_name,status}`,
`:tensorflow:serving:request_latency{model_name,API,entrypoint}` in
microseconds); this server adds, under `:tensorflow:serving:embedded:`,
per-signature counts and latencies, the time requests waited for their turn
at the model per front end (`entrypoint`), batch sizes, batching queue depth
and model version states. Exposed in Prometheus text format 0.0.4 on the REST port.

>>> m = Metrics()
>>> m.request("m", "serving_default", "predict", "REST", grpc.StatusCode.OK, 0.002)
>>> ':tensorflow:serving:request_count{model_name="m",status="OK"} 1' in m.render()
True
"""
from __future__ import annotations

import bisect
import threading

import grpc

__all__ = ["Metrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_US_BUCKETS = tuple(10 * 1.8 ** i for i in range(33))  # 10us .. ~1.5e9us, as TF Serving
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _labels(names, values) -> str:
    def esc(v):
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return ",".join(f'{n}="{esc(v)}"' for n, v in zip(names, values))


class _Family:
    def __init__(self, name, kind, help_, labels, buckets=None):
        self.name, self.kind, self.help, self.labels, self.buckets = name, kind, help_, labels, buckets
        self.values: dict = {}

    def inc(self, key, amount=1.0):
        self.values[key] = self.values.get(key, 0.0) + amount

    def set(self, key, value):
        self.values[key] = value

    def observe(self, key, value):
        entry = self.values.get(key)
        if entry is None:
            entry = self.values[key] = [[0] * len(self.buckets), 0.0, 0]
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.buckets):
            entry[0][i] += 1
        entry[1] += value
        entry[2] += 1

    def render(self, out: list) -> None:
        out.append(f"# HELP {self.name} {self.help}")
        out.append(f"# TYPE {self.name} {self.kind}")
        for key, value in sorted(self.values.items()):
            lab = _labels(self.labels, key)
            if self.kind != "histogram":
                out.append(f"{self.name}{{{lab}}} {value:g}" if lab else f"{self.name} {value:g}")
                continue
            counts, total, n = value
            running = 0
            sep = "," if lab else ""
            for bound, c in zip(self.buckets, counts):
                running += c
                out.append(f'{self.name}_bucket{{{lab}{sep}le="{bound:g}"}} {running}')
            out.append(f'{self.name}_bucket{{{lab}{sep}le="+Inf"}} {n}')
            out.append(f"{self.name}_sum{{{lab}}} {total:g}")
            out.append(f"{self.name}_count{{{lab}}} {n}")


class Metrics:
    """Thread-safe counters, gauges and histograms of the server."""

    def __init__(self):
        self._lock = threading.Lock()
        p = ":tensorflow:serving:"
        e = p + "embedded:"
        self.request_count = _Family(p + "request_count", "counter",
                                     "The total number of requests.", ("model_name", "status"))
        self.request_latency = _Family(p + "request_latency", "histogram",
                                       "Distribution of wall time (in microseconds) for Tensorflow "
                                       "Serving request.", ("model_name", "API", "entrypoint"),
                                       _LATENCY_US_BUCKETS)
        self.signature_requests = _Family(e + "requests", "counter",
                                          "Requests per model, signature, API, entrypoint and status.",
                                          ("model_name", "signature_name", "API", "entrypoint", "status"))
        self.signature_latency = _Family(e + "request_latency_seconds", "histogram",
                                         "Request wall time in seconds per model and signature.",
                                         ("model_name", "signature_name", "API"), _SECONDS_BUCKETS)
        self.admission_latency = _Family(e + "admission_wait_seconds", "histogram",
                                         "Seconds a request waited for its turn at the model (one "
                                         "queue for both front ends).", ("model_name", "entrypoint"),
                                         _SECONDS_BUCKETS)
        self.batch_size = _Family(e + "batch_size", "histogram",
                                  "Sizes of the batches run (after padding to allowed_batch_sizes).",
                                  ("model_name",), _BATCH_BUCKETS)
        self.queue_depth = _Family(e + "batch_queue_depth", "gauge",
                                   "Requests waiting in the batching queue when a batch was formed.",
                                   ("model_name",))
        self.version_state = _Family(e + "model_version_state", "gauge",
                                     "1 for the state a model version is in.",
                                     ("model_name", "version", "state"))
        self._families = [self.request_count, self.request_latency, self.signature_requests,
                          self.signature_latency, self.admission_latency, self.batch_size, self.queue_depth, self.version_state]

    def request(self, model: str, signature: str, api: str, entrypoint: str,
                code: grpc.StatusCode, seconds: float) -> None:
        status = code.name
        with self._lock:
            self.request_count.inc((model, status))
            self.request_latency.observe((model, api, entrypoint), seconds * 1e6)
            self.signature_requests.inc((model, signature, api, entrypoint, status))
            self.signature_latency.observe((model, signature, api), seconds)

    def admission_wait(self, model: str, entrypoint: str, seconds: float) -> None:
        with self._lock:
            self.admission_latency.observe((model, entrypoint), seconds)

    def batch(self, model: str, size: int, depth: int) -> None:
        with self._lock:
            self.batch_size.observe((model,), size)
            self.queue_depth.set((model,), depth)

    def version(self, model: str, version: int, state: str) -> None:
        with self._lock:
            for key in [k for k in self.version_state.values if k[:2] == (model, str(version))]:
                del self.version_state.values[key]
            self.version_state.set((model, str(version), state), 1)

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            for family in self._families:
                family.render(out)
        return "\n".join(out) + "\n"
