"""bench/: the measurement helpers and the report writer on tiny cases (seconds, no model)."""
from __future__ import annotations

import json
import math
import threading
import time

import pytest

from bench import _corpus, _measure, _report


# ---------------------------------------------------------------------------- statistics
def test_percentiles_match_numpy_linear_interpolation():
    values = list(range(1, 101))  # 1..100
    p = _measure.percentiles(values)
    assert p == {"p50": pytest.approx(50.5), "p95": pytest.approx(95.05), "p99": pytest.approx(99.01)}
    assert _measure.percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}
    assert all(math.isnan(v) for v in _measure.percentiles([]).values())


def test_spread():
    s = _measure.spread([10.0, 12.0, 8.0])
    assert s["median"] == 10.0 and s["mean"] == 10.0
    assert (s["min"], s["max"]) == (8.0, 12.0)
    assert s["stdev"] == pytest.approx(2.0)
    assert s["rel_spread"] == pytest.approx(0.4)
    assert _measure.spread([5.0])["stdev"] == 0.0


def test_measure_discards_warmup_and_repeats():
    calls = []
    m = _measure.measure(lambda item: calls.append(item), [["a"], ["b", "c"]], name="x",
                         params={"batch_size": 2}, warmup=3, repetitions=4)
    assert len(calls) == 3 + 4 * 2
    assert m.texts == 3 and m.requests == 2
    assert len(m.throughputs) == 4 and len(m.latencies) == 8
    d = m.to_dict()
    assert d["repetitions"] == 4 and d["warmup_calls"] == 3
    assert set(d["latency_ms"]) >= {"p50", "p95", "p99", "mean", "n"}
    assert d["throughput"]["median"] > 0 and len(d["throughput"]["values"]) == 4


def test_measure_concurrent_runs_calls_in_parallel():
    active, peak, lock = [0], [0], threading.Lock()

    def call(item):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1

    m = _measure.measure(call, [["t"]] * 16, concurrency=4, warmup=0, repetitions=2)
    assert peak[0] == 4
    assert len(m.latencies) == 32
    # 16 calls of 10 ms on 4 threads: ~40 ms, far less than the 160 ms sequentially
    assert max(m.throughputs) > 16 / 0.15


def test_measure_budget_bounds_repetitions_and_errors_propagate():
    m = _measure.measure(lambda item: time.sleep(0.02), [["t"]], warmup=0, repetitions=50, budget_s=0.05)
    assert 1 <= len(m.throughputs) < 10

    def boom(item):
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError, match="broken"):
        _measure.measure(boom, [["t"]] * 4, concurrency=2, warmup=0, repetitions=1)


# ---------------------------------------------------------------------------- corpus
def test_corpus_is_deterministic_real_text_of_mixed_lengths():
    texts = _corpus.load_sentences()
    assert len(texts) >= 100 and len(set(texts)) == len(texts)
    words = [len(t.split()) for t in texts]
    assert min(words) <= 4 and max(words) >= 60
    a = _corpus.make_corpus(300)
    assert a == _corpus.make_corpus(300) and len(a) == 300
    assert set(a) == set(texts)
    assert _corpus.make_corpus(300, seed=1) != a
    assert [len(b) for b in _corpus.batches(a[:70], 32)] == [32, 32, 6]


def test_padding_stats():
    class Tok:
        def __call__(self, texts):
            return {"input_ids": [[0] * len(t.split()) for t in texts]}

    stats = _corpus.padding_stats(["a", "a b c", "a b", "a b c d"], [1, 2, 4], Tok())
    assert stats[1]["padded_over_real"] == 1.0
    assert stats[2] == {"real_tokens": 10, "padded_tokens": 6 + 8, "padded_over_real": 1.4}
    assert stats[4]["padded_tokens"] == 16


# ---------------------------------------------------------------------------- report
def _m(name, bs, conc, tps, lat_ms=(10.0, 12.0, 14.0), notes=None):
    m = _measure.Measurement(name=name, params={"batch_size": bs, "concurrency": conc}, throughputs=list(tps),
                             latencies=[x / 1000 for x in lat_ms], texts=64, requests=2, warmup=1,
                             notes=notes or {})
    return m.to_dict()


@pytest.fixture
def results():
    ms = []
    for bs, tp in ((1, 80), (8, 100), (32, 100), (64, 90)):
        ms.append(_m("ceiling", bs, 1, [tp, tp * 1.1, tp * 0.9]))
        ms.append(_m("pytorch", bs, 1, [tp / 2] * 3))
        ms.append(_m("grpc_predict", bs, 1, [tp * 0.9] * 3))
        ms.append(_m("rest_predict", bs, 1, [tp * 0.7] * 3))
    ms += [_m("grpc_batched", 32, 1, [85] * 3), _m("grpc_batched", 32, 4, [95] * 3),
           _m("rest_batched", 32, 4, [70] * 3)]
    for c, off, on in ((1, 50, 48), (8, 80, 150), (32, 80, 200)):
        ms.append(_m("clients_unbatched", 1, c, [off] * 3))
        ms.append(_m("clients_batched", 1, c, [on] * 3, notes={"mean_server_batch_size": c / 2}))
    ms += [_m("tokenizer_graph", 32, 1, [20000] * 3), _m("tokenizer_hf", 32, 1, [10000] * 3)]
    return {"meta": {"date": "2026-01-01 00:00 UTC", "quick": True, "cpu": "test cpu", "cores": 2,
                     "corpus": {"texts": 64, "distinct": 60, "tokens": {"mean": 20, "min": 5, "max": 80}},
                     "padding": {"1": {"padded_over_real": 1.0}, "32": {"padded_over_real": 2.5}}},
            "measurements": ms,
            "warmup": {"runs": [{"variant": "without_warmup", "start_to_available_s": 5.0, "first_request_ms": 900.0,
                                 "start_to_first_answer_s": 6.0, "steady_p50_ms": 10.0},
                                {"variant": "with_warmup", "start_to_available_s": 7.0, "first_request_ms": 20.0,
                                 "start_to_first_answer_s": 7.1, "steady_p50_ms": 10.0}],
                       "warmup_file_source": "export"},
            "notes": ["a note"]}


def test_ratios_mark_targets(results):
    rows = {r["key"]: r for r in _report.ratios(results)}
    assert rows["grpc_vs_ceiling"]["value"] == pytest.approx(0.95)  # best concurrency (95) / ceiling 32 (100)
    assert rows["grpc_vs_ceiling"]["met"] is True
    assert rows["rest_vs_ceiling"]["value"] == pytest.approx(0.70) and rows["rest_vs_ceiling"]["met"] is False
    assert rows["batching_32_clients"]["value"] == pytest.approx(2.5) and rows["batching_32_clients"]["met"] is True
    assert rows["grpc_vs_pytorch"]["value"] == pytest.approx(1.9) and rows["grpc_vs_pytorch"]["met"] is True
    lo, hi = rows["grpc_vs_ceiling"]["range"]
    assert lo == pytest.approx(95 / 110) and hi == pytest.approx(95 / 90)
    assert rows["tokenizer_bs32"]["value"] == pytest.approx(2.0)
    assert rows["grpc_vs_rest"]["target"] is None and rows["grpc_vs_rest"]["met"] is None


def test_length_bucket_ratios_compare_with_the_plain_export_and_its_sorted_ceiling():
    ms = [_m("ceiling", 32, 1, [300.0]), _m("ceiling_plain", 32, 1, [100.0]), _m("ceiling_plain_sorted", 32, 1, [400.0]),
          _m("ceiling", 1, 1, [96.0]), _m("ceiling_plain", 1, 1, [100.0])]
    rows = {r["key"]: r for r in _report.ratios({"measurements": ms})}
    assert rows["buckets_vs_plain"]["value"] == pytest.approx(3.0) and rows["buckets_vs_plain"]["met"] is True
    assert rows["buckets_vs_sorted"]["value"] == pytest.approx(0.75) and rows["buckets_vs_sorted"]["met"] is False
    assert rows["buckets_batch1"]["value"] == pytest.approx(0.96) and rows["buckets_batch1"]["met"] is True


def test_bf16_row_says_not_applicable_without_bf16_cpu_flags():
    results = {"measurements": [], "meta": {"cpu_flags": ["avx2", "fma"]}, "info": {"bf16": {"applicable": False}}}
    table = _report.targets_table(results)
    assert "not applicable on this CPU (relevant flags: avx2, fma)" in table


def test_a_missed_batching_target_names_the_bound_this_cpu_allows():
    ms = [_m("ceiling", 32, 1, [150.0]), _m("clients_unbatched", 1, 32, [100.0]),
          _m("clients_batched", 1, 32, [130.0])]
    row = next(line for line in _report.targets_table({"measurements": ms}).splitlines() if "batching on / off" in line)
    assert "**missed**: 1.50 is the most this CPU allows (bound on batching on / off, 32 single-text clients: ceiling at batch 32" in row
    ms[0] = _m("ceiling", 32, 1, [300.0])  # the bound is above the target: a plain miss
    row = next(line for line in _report.targets_table({"measurements": ms}).splitlines() if "batching on / off" in line)
    assert row.endswith("| **missed** |")


def test_memory_table_marks_the_ten_percent_bound():
    table = _report.memory_table({"memory": {"bucketed": {"loaded": 500.0, "batch_128": 560.0},
                                             "plain": {"loaded": 500.0, "batch_128": 500.0}}})
    rows = table.splitlines()
    assert "| 1.00 | ≤ 1.1 | **met** |" in rows[2] and "| 1.12 | ≤ 1.1 | **missed** |" in rows[3]


def test_ratios_missing_measurements_are_nan_not_errors():
    rows = _report.ratios({"measurements": [_m("ceiling", 32, 1, [100.0])]})
    assert all(r["met"] is None for r in rows)
    assert math.isnan(rows[0]["value"])


def test_write_report_markdown_json_and_pngs(results, tmp_path):
    paths = _report.write_report(results, tmp_path)
    md = paths["markdown"].read_text()
    assert "| gRPC `predict_batched` / ceiling (batch 32, same batches) | 0.95 (0.86–1.06) | ≥ 0.9 | **met** |" in md
    assert "**missed**" in md
    assert "server batches of 16.0 on average" in md
    assert "2.50×" in md  # padding
    assert "| with warmup file |" in md and "90.0×" in md  # 900 ms / 10 ms without warmup
    for p in paths["plots"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({p.name})" in md
    data = json.loads(paths["json"].read_text())
    assert {r["key"] for r in data["ratios"]} >= set(_report.TARGETS)
    assert len(data["measurements"]) == len(results["measurements"])


def test_update_readme_section_touches_only_its_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# P\n\nintro\n\n## Benchmarks\n\nold table\n\n## Other\n\nkeep me\n")
    _report.update_readme_section(readme, "new table")
    assert readme.read_text() == "# P\n\nintro\n\n## Benchmarks\n\nnew table\n\n## Other\n\nkeep me\n"
    readme.write_text("# P\n\n## Other\n\nkeep me\n")
    _report.update_readme_section(readme, "appended")
    assert readme.read_text() == "# P\n\n## Other\n\nkeep me\n\n## Benchmarks\n\nappended\n"


def test_cli_rejects_unknown_scenarios(capsys):
    from bench.__main__ import parse_args

    args = parse_args(["--quick", "--only", "ceiling,served"])
    assert args.quick and args.only == ["ceiling", "served"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "nonsense"])


def test_cpu_accounting_notes():
    import os

    def busy(item):
        end = time.process_time() + 0.005
        while time.process_time() < end:
            pass

    probe_calls = []

    def probe():
        probe_calls.append(1)
        return 2.0 * len(probe_calls)  # +2 CPU seconds between the two readings

    m = _measure.measure(busy, [["a", "b"]] * 2, warmup=1, repetitions=2, cpu_probes={"server": probe})
    assert m.notes["cpu_ms_per_text"] == pytest.approx(2.5, rel=0.5)  # 5 ms per call of 2 texts
    assert m.notes["server_cpu_ms_per_text"] == pytest.approx(2000.0 / 8)
    assert _measure.process_cpu_seconds(os.getpid()) > 0


def test_short_corpus_has_near_uniform_lengths():
    short = _corpus.make_corpus(100, words=_corpus.SHORT_WORDS)
    lo, hi = _corpus.SHORT_WORDS
    assert len(short) == 100 and all(lo <= len(t.split()) <= hi for t in short)
    assert len(set(short)) >= 30
