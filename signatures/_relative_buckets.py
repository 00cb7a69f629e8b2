"""MPNet's relative-position buckets as an integer table, so no graph rewrite can move them.

MPNet adds a learned bias per head to each attention score, chosen by the
bucket of the distance between the two tokens (T5-style: exact up to
`max_exact`, logarithmic up to `max_distance`). Transformers' TF code computes
the logarithmic part in float64 and truncates it to an integer:

    max_exact + int(log(n / max_exact) / log(max_distance / max_exact) * (num_buckets - max_exact))

At the distances where the exact value is a whole number (16, 32, 64 and 128
with all-mpnet-base-v2's 32 buckets and 128 max distance) the truncation
decides the bucket. Run eagerly (and in PyTorch, in float32) log(8)/log(16)*8
rounds to exactly 6.0; in a graph, grappler's constant folding (on by default
in TF Serving, in `tf.saved_model.load` and in every `tf.function`) pushes the
two constants together, `log(x) * (8 / log(16))`, which gives
5.999999999999999: every token pair 64 apart gets the bias of bucket 13
instead of 14. On the real model that moved the pooled embedding by 2.3e-4
and `last_hidden_state` by 7e-3 on texts longer than 64 tokens, while the
in-memory model matched PyTorch; shorter texts (and tiny test models with 64
positions) never reach that distance.

The table holds each bucket computed with integers only (no rounding to
lose), gathered by the clipped relative position: the graph carries no float
arithmetic for an optimizer to reassociate.

>>> relative_bucket_table(32, 128)[128 + np.array([-64, -16, 0, 5, 64, 128])]
array([14, 10,  0, 21, 30, 31], dtype=int32)
"""
from __future__ import annotations

import numpy as np

__all__ = ["relative_bucket_table", "use_exact_relative_buckets"]


def relative_bucket_table(num_buckets: int, max_distance: int) -> np.ndarray:
    """Bucket of relative position `r` (memory minus context) at index `r + max_distance`, for |r| <= max_distance.

    Farther positions share the bucket of +-max_distance (the last one on each side).
    """
    half = num_buckets // 2  # one half for each direction
    max_exact = half // 2
    steps = half - max_exact  # logarithmic buckets per direction
    if max_exact < 1 or max_distance <= max_exact:
        raise ValueError(f"relative buckets need num_buckets >= 4 and max_distance > num_buckets // 4, "
                         f"got num_buckets={num_buckets}, max_distance={max_distance}")

    def magnitude(n: int) -> int:
        if n < max_exact:
            return n
        # the largest k <= steps with log(n / max_exact) / log(max_distance / max_exact) * steps >= k,
        # that is (n / max_exact) ** steps >= (max_distance / max_exact) ** k: exact in Python integers
        k = 0
        while k < steps and n ** steps * max_exact ** (k + 1) >= max_distance ** (k + 1) * max_exact ** steps:
            k += 1
        return min(max_exact + k, half - 1)

    return np.array([(half if r > 0 else 0) + magnitude(abs(r)) for r in range(-max_distance, max_distance + 1)],
                    dtype=np.int32)


def _table_bucket(relative_position, num_buckets: int = 32, max_distance: int = 128):
    """Drop-in for `TFMPNetEncoder._relative_position_bucket` (same arguments, same values)."""
    import tensorflow as tf

    table = tf.constant(relative_bucket_table(num_buckets, max_distance), dtype=relative_position.dtype)
    return tf.gather(table, tf.clip_by_value(relative_position, -max_distance, max_distance) + max_distance)


def use_exact_relative_buckets(model) -> None:
    """Make every MPNet encoder in `model` compute its buckets from the integer table.

    Changes the model in place (an instance attribute over the static method),
    before any signature is traced, so the in-memory reference, the PyTorch
    parity check and the SavedModel all run the same buckets.
    """
    encoders = [layer for layer in model.submodules if hasattr(layer, "_relative_position_bucket")]
    if not encoders:
        raise ValueError(f"{type(model).__name__} has no layer with relative-position buckets to replace")
    for encoder in encoders:
        encoder._relative_position_bucket = _table_bucket
