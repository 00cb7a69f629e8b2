"""Child process for the in-process scenarios: `python -m bench._worker SPEC.json OUT.json`.

SPEC: {"kind": "ceiling" | "pytorch" | "tokenizer_graph" | "tokenizer_hf",
       "kwargs": {...runner arguments...}, "name": "...",
       "settings": [{"batch_size": 32, "texts": 256, ["words": [11, 15], "sort": true, "name": "..."]}, ...],
       "warmup": "pass" (one discarded pass over the batches) or a number of calls, "repetitions": 3, "budget_s": 30, "sample_texts": [...]}
OUT:  {"info": {...}, "load_s": ..., "measurements": [Measurement.to_dict()...],
       "sample": [[...embedding or ids...], ...]}
"""
from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)

    from tqdm import tqdm

    from bench._corpus import batches, make_corpus
    from bench._inprocess import build
    from bench._measure import measure

    t0 = time.perf_counter()
    run = build(spec["kind"], **spec.get("kwargs", {}))
    load_s = time.perf_counter() - t0
    results = []
    for setting in spec["settings"]:
        bs, n = setting["batch_size"], setting["texts"]
        words = tuple(setting["words"]) if setting.get("words") else None
        texts = make_corpus(n, words=words)
        if setting.get("sort"):  # length-sorted batches: what bucketing by length would save
            texts = sorted(texts, key=len)
        items = batches(texts, bs)
        name = setting.get("name", spec["name"])
        reps = spec.get("repetitions", 3)
        with tqdm(total=len(items) * reps, desc=f"{name} bs={bs}", unit="req", leave=False,
                  disable=spec.get("quiet", False) or None) as bar:
            m = measure(run, items, name=name, params={"batch_size": bs, "concurrency": 1},
                        warmup=len(items) if spec.get("warmup", "pass") == "pass" else int(spec["warmup"]),
                        repetitions=reps, budget_s=spec.get("budget_s"),
                        progress=bar)
        results.append(m.to_dict())
    sample = None
    if spec.get("sample_texts"):
        out = run(spec["sample_texts"])
        sample = [[float(x) for x in row] for row in out.tolist()]
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"info": getattr(run, "info", {}), "load_s": round(load_s, 3), "measurements": results,
                   "sample": sample}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
