"""The bench's scenarios, each bounded by fixed request counts and time budgets.

    inprocess(kind)     ceiling / pytorch / tokenizer_graph / tokenizer_hf, in a child process
    served()            one server (no batching): gRPC and REST `predict` per batch size,
                        `predict_batched` at batch 32 with several concurrencies, and
                        1/8/32 concurrent single-text gRPC clients
    server_batching()   the same concurrent single-text clients against a server with
                        `--enable_batching`
    warmup()            time to the first answer after start-up, with and without the
                        version's `assets.extra/tf_serving_warmup_requests`

Every server runs on 127.0.0.1 inside a `ServerProcess` context manager (stopped
with SIGTERM however the scenario ends); every client call has a timeout.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tqdm import tqdm

from bench._corpus import SHORT_WORDS, batches, make_corpus
from bench._measure import Measurement, measure, process_cpu_seconds
from server._env import set_defaults as set_env_defaults

__all__ = ["Config", "FULL", "QUICK", "MODEL_NAME", "inprocess", "served", "server_batching", "warmup",
           "BATCHING_PARAMETERS"]

MODEL_NAME = "minilm"
REPO = Path(__file__).resolve().parent.parent
#: server-side batching for this 2-core machine (TF Serving text format): with length buckets in the
#: graph a mixed-length batch no longer pays for padding; 2 ms is at the top of the idle sweep at 8 and 32 clients
#: (`python -m bench._batching_sweep`; docker/config/batching.config has the same timeout)
BATCHING_PARAMETERS = ("max_batch_size { value: 32 }\n"
                       "batch_timeout_micros { value: 2000 }\n"
                       "num_batch_threads { value: 2 }\n"
                       "max_enqueued_batches { value: 100 }\n")
#: gRPC handler threads for every server of the run: the default (4 per CPU = 8 here)
#: would cap the 32-client scenarios at 8 requests in flight
GRPC_MAX_THREADS = 64
CLIENT_TIMEOUT = 120.0


@dataclasses.dataclass(frozen=True)
class Config:
    """How much to run. `FULL` for `make bench`, `QUICK` (< 3 minutes) for `--quick`."""

    quick: bool
    batch_sizes: tuple[int, ...] = (1, 8, 32, 64)
    texts: tuple[tuple[int, int], ...] = ((1, 48), (8, 128), (32, 256), (64, 256))  # batch size -> texts/repetition
    repetitions: int = 5              # timed passes over the texts, after one discarded warm-up pass
    budget_s: float = 20.0            # no new repetition of one setting after this
    batched_size: int = 32            # predict_batched batch size (the targets' batch)
    batched_concurrency: tuple[int, ...] = (1, 2, 4)
    batched_texts: int = 256          # texts per predict_batched call (= one repetition)
    clients: tuple[int, ...] = (1, 8, 32)
    short_clients: tuple[int, ...] = (32,)  # the same with near-uniform short texts (little padding)
    short_batch_sizes: tuple[int, ...] = (1, 32)  # ceiling on the short texts: what batching can gain
    requests_per_client: int = 8      # concurrent single-text clients: requests per client per repetition
    min_client_requests: int = 48
    tokenizer_batch_sizes: tuple[int, ...] = (1, 32)
    tokenizer_texts: int = 2048
    warmup_starts: int = 2            # server starts per warm-up variant
    steady_requests: int = 20
    worker_timeout_s: float = 900.0
    bucket_batch_sizes: tuple[int, ...] = (1, 32)  # ceiling without length buckets (the plain export)
    rss_batch_sizes: tuple[int, ...] = (32, 128)   # server peak RSS after requests of these sizes
    rss_batches: int = 4                           # requests per size

    def texts_for(self, batch_size: int) -> int:
        return dict(self.texts)[batch_size]

    def client_requests(self, concurrency: int) -> int:
        return max(self.min_client_requests, concurrency * self.requests_per_client)


FULL = Config(quick=False)
QUICK = Config(quick=True, texts=((1, 8), (8, 32), (32, 64), (64, 64)), repetitions=3, budget_s=3.0,
               batched_concurrency=(1, 4), batched_texts=64, requests_per_client=2, min_client_requests=16,
               tokenizer_texts=256, warmup_starts=1, steady_requests=8, worker_timeout_s=600.0, rss_batches=2)


# ---------------------------------------------------------------------------- in-process
def inprocess(kind: str, name: str, cfg: Config, *, batch_sizes=None, texts=None, sample_texts=(),
              extra_settings=(), **kwargs) -> dict:
    """Run one in-process runner in `python -m bench._worker`; returns its OUT dict."""
    batch_sizes = batch_sizes or cfg.batch_sizes
    settings = [{"batch_size": bs, "texts": texts or cfg.texts_for(bs)} for bs in batch_sizes]
    settings += list(extra_settings)
    spec = {"kind": kind, "name": name, "kwargs": kwargs, "settings": settings, "warmup": "pass",
            "repetitions": cfg.repetitions, "budget_s": cfg.budget_s, "sample_texts": list(sample_texts)}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        spec_path, out_path = Path(tmp, "spec.json"), Path(tmp, "out.json")
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        env = set_env_defaults(dict(os.environ))
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        proc = subprocess.run([sys.executable, "-m", "bench._worker", str(spec_path), str(out_path)],
                              cwd=REPO, env=env, timeout=cfg.worker_timeout_s, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench worker {kind} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(out_path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------- servers
def _server(model_base: Path, *extra: str, timeout: float = 900.0):
    from server import ServerProcess

    flags = [f"--model_name={MODEL_NAME}", f"--model_base_path={model_base}",
             f"--grpc_max_threads={GRPC_MAX_THREADS}", *extra]
    return ServerProcess(flags, timeout=timeout, cwd=str(REPO))


@contextlib.contextmanager
def timed_requests(client, sink: list):
    """Record the latency of every request `client` sends (predict_batched's requests too)."""
    original = client._send_predict
    lock = threading.Lock()

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        elapsed = time.perf_counter() - start
        with lock:
            sink.append(elapsed)
        return out

    client._send_predict = timed
    try:
        yield sink
    finally:
        del client._send_predict


class ClientPool:
    """One client (own channel/connection) per concurrent thread, created and warmed up front."""

    def __init__(self, factory, size: int):
        self.clients = [factory() for _ in range(size)]
        for c in self.clients:
            c.predict(MODEL_NAME, ["warm up the connection"])
        self._free = list(self.clients)
        self._local = threading.local()
        self._lock = threading.Lock()

    def get(self):
        client = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                client = self._local.client = self._free.pop()
        return client

    def reset(self) -> None:
        """After a run's threads ended: every client is free again."""
        self._free = list(self.clients)

    def close(self) -> None:
        for c in self.clients:
            c.close()


def _bar(total: int, desc: str):
    return tqdm(total=total, desc=desc, unit="req", leave=False, disable=None)


def _server_cpu(srv) -> dict:
    return {"server": lambda: process_cpu_seconds(srv.pid)}


def _predict_sweep(client, transport: str, cfg: Config, probes: dict) -> list[Measurement]:
    out = []
    for bs in cfg.batch_sizes:
        items = batches(make_corpus(cfg.texts_for(bs)), bs)
        with _bar(len(items) * cfg.repetitions, f"{transport} predict bs={bs}") as bar:
            out.append(measure(lambda b: client.predict(MODEL_NAME, b), items, name=f"{transport}_predict",
                               params={"batch_size": bs, "concurrency": 1}, warmup=len(items),
                               repetitions=cfg.repetitions, budget_s=cfg.budget_s, progress=bar,
                               cpu_probes=probes))
    return out


def _batched(client, transport: str, cfg: Config, probes: dict) -> list[Measurement]:
    out = []
    texts = make_corpus(cfg.batched_texts)
    bs = cfg.batched_size
    # In corpus order (sort_by_length=False: the same batches as the ceiling) at each concurrency, and
    # the client's default (rows grouped by length: less padding) at the highest concurrency.
    runs = [(c, False) for c in cfg.batched_concurrency] + [(max(cfg.batched_concurrency), True)]
    for c, grouped in runs:
        def call(chunk, c=c, grouped=grouped):
            return client.predict_batched(MODEL_NAME, chunk, batch_size=bs, concurrency=c, progress=False,
                                          **({} if grouped else {"sort_by_length": False}))

        name = f"{transport}_batched" + ("_sorted" if grouped else "")
        call(texts)  # warm-up pass, discarded
        sink: list[float] = []
        with timed_requests(client, sink), _bar(cfg.repetitions, f"{name} c={c}") as bar:
            m = measure(call, [texts], name=name, params={"batch_size": bs, "concurrency": c},
                        warmup=0, repetitions=cfg.repetitions, budget_s=cfg.budget_s, progress=bar,
                        cpu_probes=probes)
        m.latencies = list(sink)
        m.latency_of = f"request ({bs} texts) inside predict_batched"
        m.warmup = 1
        out.append(m)
    return out


PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
MONITORING_CONFIG = f'prometheus_config {{ enable: true path: "{PROMETHEUS_PATH}" }}\n'


def batch_histogram(rest_url: str | None) -> tuple[float, float] | None:
    """(sum, count) of the server's batch-size histogram (Prometheus), or None."""
    if not rest_url:
        return None
    import urllib.request

    try:
        with urllib.request.urlopen(rest_url + PROMETHEUS_PATH, timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    total = count = None
    for line in text.splitlines():
        if line.startswith(":tensorflow:serving:embedded:batch_size_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith(":tensorflow:serving:embedded:batch_size_count"):
            count = float(line.rsplit(" ", 1)[1])
    return (total or 0.0, count or 0.0)


def _concurrent_clients(srv, cfg: Config, name: str) -> list[Measurement]:
    from clients import GrpcClient

    out = []
    pool = ClientPool(lambda: GrpcClient(srv.grpc_target, timeout=CLIENT_TIMEOUT), max(cfg.clients))
    runs = [(c, name, None) for c in cfg.clients] + [(c, name + "_short", SHORT_WORDS) for c in cfg.short_clients]
    try:
        for c, label, words in runs:
            items = [[t] for t in make_corpus(cfg.client_requests(c), words=words)]
            before = batch_histogram(srv.rest_url)
            with _bar(len(items) * cfg.repetitions, f"{label} clients={c}") as bar:
                m = _measure_clients(pool, items, c, label, cfg, bar, _server_cpu(srv))
            after = batch_histogram(srv.rest_url)
            if before and after and after[1] > before[1]:
                runs = after[1] - before[1]
                m.notes["server_batches"] = int(runs)
                m.notes["mean_server_batch_size"] = round((after[0] - before[0]) / runs, 2)
            out.append(m)
    finally:
        pool.close()
    return out


def _measure_clients(pool, items, concurrency, name, cfg, bar, probes) -> Measurement:
    def call(item):
        return pool.get().predict(MODEL_NAME, item)

    # measure() starts fresh threads per repetition; hand the pool's clients out anew each time.
    measure(call, items, concurrency=concurrency, warmup=0, repetitions=1)  # warm-up pass, discarded
    throughputs, latencies = [], []
    cpu = {"cpu_ms_per_text": 0.0, **{f"{k}_cpu_ms_per_text": 0.0 for k in probes}}
    start = time.perf_counter()
    for rep in range(cfg.repetitions):
        if rep and time.perf_counter() - start > cfg.budget_s:
            break
        pool.reset()
        m = measure(call, items, concurrency=concurrency, warmup=0, repetitions=1, progress=bar, cpu_probes=probes)
        throughputs += m.throughputs
        latencies += m.latencies
        for k in cpu:
            cpu[k] += m.notes[k]
    pool.reset()
    return Measurement(name=name, params={"batch_size": 1, "concurrency": concurrency}, throughputs=throughputs,
                       latencies=latencies, texts=len(items), requests=len(items), warmup=len(items),
                       latency_of="request (1 text)", notes={k: v / len(throughputs) for k, v in cpu.items()})


def served(model_base: Path, cfg: Config) -> tuple[list[Measurement], dict]:
    """gRPC and REST through one server without batching; unbatched concurrent clients."""
    from clients import GrpcClient, RestClient

    results: list[Measurement] = []
    t0 = time.perf_counter()
    with _server(model_base) as srv:
        info = {"start_s": round(time.perf_counter() - t0, 2), "flags": srv.flags}
        with GrpcClient(srv.grpc_target, timeout=CLIENT_TIMEOUT) as grpc_client, \
                RestClient(srv.rest_url, timeout=CLIENT_TIMEOUT) as rest_client:
            for transport, client in (("grpc", grpc_client), ("rest", rest_client)):
                client.predict(MODEL_NAME, ["connect and fetch the signature"])
                results += _predict_sweep(client, transport, cfg, _server_cpu(srv))
                results += _batched(client, transport, cfg, _server_cpu(srv))
        results += _concurrent_clients(srv, cfg, "clients_unbatched")
    return results, info


def server_batching(model_base: Path, cfg: Config) -> tuple[list[Measurement], dict]:
    """1/8/32 concurrent single-text gRPC clients against `--enable_batching`."""
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as tmp:
        params = Path(tmp, "batching.config")
        params.write_text(BATCHING_PARAMETERS, encoding="utf-8")
        monitoring = Path(tmp, "monitoring.config")
        monitoring.write_text(MONITORING_CONFIG, encoding="utf-8")
        t0 = time.perf_counter()
        with _server(model_base, "--enable_batching=true", f"--batching_parameters_file={params}",
                     f"--monitoring_config_file={monitoring}") as srv:
            info = {"start_s": round(time.perf_counter() - t0, 2), "flags": srv.flags,
                    "batching_parameters": BATCHING_PARAMETERS}
            results = _concurrent_clients(srv, cfg, "clients_batched")
    return results, info


# ---------------------------------------------------------------------------- warm-up
def _link_tree(src: Path, dst: Path) -> None:
    try:
        shutil.copytree(src, dst, copy_function=os.link)
    except OSError:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)


def _write_warmup_file(path: Path, texts: list[str]) -> None:
    """A fallback warmup file (only when the export wrote none): predict records for the
    `serving_default` and `text` signatures at batch sizes 1, 8 and 32 of corpus texts.
    Every signature needs its own records: each one is a different feed/fetch set, so a
    different session callable that pays its own first-run cost."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for sig, bs in [(sig, bs) for sig in ("serving_default", "text") for bs in (1, 8, 32)]:
            req = predict_pb2.PredictRequest()
            req.model_spec.name = MODEL_NAME
            req.model_spec.signature_name = sig
            req.inputs["text"].CopyFrom(tf.make_tensor_proto([t.encode() for t in texts[:bs]], dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
            writer.write(log.SerializeToString())


def warmup(version_dir: Path, cfg: Config) -> dict:
    """Start-up to first answer, with and without the warmup file; alternating starts."""
    from clients import GrpcClient

    from protocol import WARMUP_DIR, WARMUP_FILE

    texts = make_corpus(cfg.steady_requests + 1)
    rows = []
    from clients._protos import messages

    messages()  # build the gRPC message classes now, not inside the first timed start
    with tempfile.TemporaryDirectory(prefix="bench-warmup-") as tmp:
        bases = {}
        source = "export"
        for variant in ("with_warmup", "without_warmup"):
            base = Path(tmp, variant, MODEL_NAME)
            _link_tree(version_dir, base / version_dir.name)
            warm = base / version_dir.name / WARMUP_DIR / WARMUP_FILE
            if variant == "with_warmup" and not warm.exists():
                _write_warmup_file(warm, make_corpus(32))
                source = "bench (the export wrote none)"
            if variant == "without_warmup" and warm.exists():
                warm.unlink()
            bases[variant] = base.parent / MODEL_NAME
        order = [v for _ in range(cfg.warmup_starts) for v in ("without_warmup", "with_warmup")]
        for variant in tqdm(order, desc="warm-up starts", leave=False, disable=None):
            t0 = time.perf_counter()
            with _server(bases[variant], "--enable_model_warmup=true") as srv:
                available = time.perf_counter() - t0
                with GrpcClient(srv.grpc_target, timeout=CLIENT_TIMEOUT) as client:
                    s = time.perf_counter()
                    client.metadata(MODEL_NAME)  # connect and cache the signature: no model run yet
                    metadata_ms = (time.perf_counter() - s) * 1000
                    s = time.perf_counter()
                    client.predict(MODEL_NAME, [texts[0]])
                    first = time.perf_counter() - s
                    to_first_answer = time.perf_counter() - t0
                    steady = []
                    for t in texts[1:]:
                        s = time.perf_counter()
                        client.predict(MODEL_NAME, [t])
                        steady.append(time.perf_counter() - s)
            steady.sort()
            rows.append({"variant": variant, "start_to_available_s": available, "first_request_ms": first * 1000,
                         "start_to_first_answer_s": to_first_answer, "connect_and_metadata_ms": metadata_ms,
                         "steady_p50_ms": steady[len(steady) // 2] * 1000})
    return {"runs": rows, "warmup_file_source": source}


def short_settings(cfg: Config, name: str) -> list[dict]:
    """Extra worker settings: `name`_short at `cfg.short_batch_sizes` on the near-uniform short texts,
    and `name`_sorted: the corpus texts of the batch-32 run, sorted by length before batching."""
    return ([{"batch_size": bs, "texts": cfg.texts_for(32), "words": list(SHORT_WORDS), "name": f"{name}_short"}
             for bs in cfg.short_batch_sizes]
            + sorted_settings(cfg, name))


def sorted_settings(cfg: Config, name: str) -> list[dict]:
    """`name`_sorted: the batch-32 corpus texts sorted by length before batching (as
    `predict_batched` and sentence-transformers' `encode` do)."""
    return [{"batch_size": cfg.batched_size, "texts": cfg.batched_texts, "sort": True, "name": f"{name}_sorted"}]
