"""Length-bucketing policy: padded tokens per sub-batch vs throughput, measured side by side.

    python -m bench._bucket_sweep [--policies 256,512,1024:0.75] [--rounds 3]

Builds one SavedModel of all-MiniLM-L6-v2 whose signatures are the `text`
signature without bucketing and with each policy (`max_tokens`, or
`max_tokens:min_fill`), loads it in a
TF1 session as the server does, and times each at batch 32 in arrival order
on the mixed corpus and on short texts, and at batch 1. Rounds interleave the
variants, so a change in the machine's load hits them all alike. The chosen
default (signatures/_buckets.py `DEFAULT_MAX_TOKENS`) and bench/FINDINGS.md
quote its table.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from bench._corpus import SHORT_WORDS, batches, make_corpus

__all__ = ["main", "build_sweep_model"]

#: (label, words per text or None for the whole corpus, batch size, texts, sorted by length first)
WORKLOADS = (("mixed, batch 32", None, 32, 128, False), ("short, batch 32", SHORT_WORDS, 32, 128, False),
             ("mixed sorted, batch 32", None, 32, 128, True), ("mixed, batch 1", None, 1, 24, False))


def _workload(words, batch_size: int, n: int, by_length: bool) -> list[list[str]]:
    texts = make_corpus(n, words=words)
    return batches(sorted(texts, key=len) if by_length else texts, batch_size)


def parse_policy(spec: str):
    """"512" -> BucketPolicy(512); "512:0.75" -> BucketPolicy(512, min_fill=0.75)."""
    from signatures import BucketPolicy

    tokens, _, fill = spec.partition(":")
    return BucketPolicy(int(tokens), float(fill)) if fill else BucketPolicy(int(tokens))


def signature_name(spec: str | None) -> str:
    return "text_plain" if spec is None else "text_" + spec.replace(":", "_fill").replace(".", "")


def build_sweep_model(path: str, specs: list[str]) -> None:
    """A SavedModel with `text_plain` and one `text_...` per policy spec (MiniLM, feature extraction)."""
    import tensorflow as tf

    from bench._inprocess import checkpoint_path
    from export import ExportOptions
    from export._exporter import build_task, load_tf_model
    from export._source import Checkpoint
    from signatures import ServingModule, architecture_for

    checkpoint = Checkpoint.open(checkpoint_path())
    options = ExportOptions(model=checkpoint.path)
    task = build_task(options, checkpoint)
    model = load_tf_model(checkpoint, task)
    tokenizer = checkpoint.build_tokenizer(checkpoint.default_max_length(), kind=options.tokenizer)
    architecture = architecture_for(checkpoint.config.model_type)
    signatures = {}
    for spec in [None, *specs]:
        policy = None if spec is None else parse_policy(spec)
        module = ServingModule(model, tokenizer, task, architecture, length_buckets=policy)
        text = tf.function(lambda text, m=module: m._text_result(m.tokenizer(text)),
                           input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        signatures[signature_name(spec)] = text.get_concrete_function()
    tf.saved_model.save(module, path, signatures=signatures)


def _time(session, name: str, items: list[list[str]]) -> float:
    import numpy as np

    start = time.perf_counter()
    for batch in items:
        session.run(name, {"text": np.array([t.encode() for t in batch], dtype=object)})
    return sum(len(b) for b in items) / (time.perf_counter() - start)


def main(argv=None) -> None:
    from export._serving_session import ServingSession

    p = argparse.ArgumentParser(prog="python -m bench._bucket_sweep")
    p.add_argument("--policies", default="256,512,1024,2048,4096",
                   help="policies to compare: max_tokens, or max_tokens:min_fill")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    specs = [x.strip() for x in args.policies.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-buckets-") as tmp:
        print("bench: building the sweep model ...", flush=True)
        build_sweep_model(tmp, specs)
        session = ServingSession.load(tmp)
        names = [signature_name(s) for s in [None, *specs]]
        work = {label: _workload(*spec) for label, *spec in WORKLOADS}
        for name in names:  # first calls build the kernels; not timed
            for items in work.values():
                _time(session, name, items[:2])
        figures: dict = {(n, w): [] for n in names for w in work}
        for _ in range(args.rounds):
            for label, items in work.items():
                for name in names:
                    figures[name, label].append(_time(session, name, items))
        session.close()
    print("| signature | " + " | ".join(f"{w} texts/s" for w in work) + " | mixed-32 vs plain |")
    print("|---|" + "---|" * (len(work) + 1))
    plain = statistics.median(figures["text_plain", WORKLOADS[0][0]])
    for name in names:
        cells = [f"{statistics.median(figures[name, w]):.0f}" for w in work]
        gain = statistics.median(figures[name, WORKLOADS[0][0]]) / plain
        print(f"| {name} | " + " | ".join(cells) + f" | {gain:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
