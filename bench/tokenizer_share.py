"""What the in-graph tokenizer costs as a share of an inference, per family, at batch 32.

    python -m bench.tokenizer_share --model DIR [--model DIR ...] [--batch 32] [--repeats 10]

For each checkpoint: the in-graph tokenizer built from its files (as the
export builds it) and a base-size encoder of its family (its config with
BERT-base dimensions, 12 layers x 768, random weights: only the shape matters
for time) are each run as a `tf.function` on the same batches of
`bench/corpus.txt` sentences; prints the median milliseconds of each and the
tokenizer's share of tokenizer + model.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


def _median_ms(fn, batches, repeats: int) -> float:
    fn(batches[0])
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(batches[i % len(batches)])
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(model_dir: str, batch: int = 32, repeats: int = 10, base: bool = True) -> dict:
    from server._env import set_defaults

    set_defaults()
    import tensorflow as tf
    import transformers

    from export import Checkpoint

    ckpt = Checkpoint.open(model_dir)
    max_length = min(128, ckpt.max_positions())
    tok = ckpt.build_tokenizer(max_length)
    lines = [line for line in (Path(__file__).parent / "corpus.txt").read_text(encoding="utf-8").splitlines() if line]
    batches = [tf.constant(lines[i:i + batch]) for i in range(0, batch * 4, batch)]
    config = ckpt.config
    if base:
        config = config.__class__(**{**config.to_dict(), **BASE})
    model = transformers.TFAutoModel.from_config(config)
    tokenize = tf.function(tok, input_signature=[tf.TensorSpec([None], tf.string)])
    encoded = [tokenize(b) for b in batches]
    forward = tf.function(lambda enc: model(**enc, training=False).last_hidden_state)
    tokenizer_ms = _median_ms(tokenize, batches, repeats)
    model_ms = _median_ms(forward, encoded, repeats)
    return {"model": str(model_dir), "model_type": config.model_type, "algorithm": ckpt.tokenizer_files.algorithm,
            "batch": batch, "tokens": int(encoded[0]["input_ids"].shape[1]), "tokenizer_ms": round(tokenizer_ms, 2),
            "model_ms": round(model_ms, 1), "share": round(tokenizer_ms / (tokenizer_ms + model_ms), 4)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="checkpoint directory (repeatable)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--as-is", action="store_true", help="time the checkpoint's own dimensions, not base size")
    args = p.parse_args(argv)
    for model in args.model:
        r = measure(model, args.batch, args.repeats, base=not args.as_is)
        print(f"{r['model_type']:12} {r['algorithm']:13} batch {r['batch']} x {r['tokens']} tokens: "
              f"tokenizer {r['tokenizer_ms']:.1f} ms, model {r['model_ms']:.0f} ms, "
              f"tokenizer share {r['share']:.2%}")


if __name__ == "__main__":
    main()
