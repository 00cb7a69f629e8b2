"""Length bucketing inside the graph: run the encoder on sub-batches of similar length.

A batch of strings is padded to its longest row, so a batch in arrival order
(single-text requests merged by server-side batching, a client's mixed batch)
makes the encoder compute mostly padding. `run_in_buckets` orders the rows by
token count, cuts the ordered batch into sub-batches of at most `max_tokens`
padded tokens (rows x the sub-batch's longest row, but at least one row),
runs the encoder + post-processing on each, padded only to its own longest
row, and puts every output back in the original row order. Outputs with a
sequence axis are padded back to the batch's longest row, so the signature's
output shapes do not change (values at padding positions are zeros, where the
plain path has whatever the encoder computed there: both mean nothing).

A batch that fits one sub-batch (a single row, or short texts whose padded
batch is within `max_tokens`), or whose real tokens fill at least `min_fill`
of its padded batch (similar lengths: bucketing would save little padding and
pay for smaller matmuls), takes the plain path: one encoder call, no
reordering, so small and uniform batches pay nothing for bucketing.

Only ops every `tensorflow_model_server` links: `If`, `While`, TensorList
ops, `PartitionedCall` (the encoder is one function called from both paths).

>>> encoded = tokenizer(tf.constant(["a", "a much longer text ..."]))
>>> run_in_buckets(encoded, lambda e: {"n": tf.reduce_sum(e["attention_mask"], 1)}, max_tokens=512)["n"]
<tf.Tensor: shape=(2,), dtype=int32, numpy=array([ 3, 12], dtype=int32)>
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import tensorflow as tf

__all__ = ["BucketPolicy", "DEFAULT_MAX_TOKENS", "DEFAULT_MIN_FILL", "run_in_buckets", "sequence_axes"]

#: Padded tokens per sub-batch (rows x longest row). Measured with
#: `python -m bench._bucket_sweep` on all-MiniLM-L6-v2 (2-core AMD EPYC, policies
#: side by side, interleaved rounds, bench/results/bucket_sweep.md): at batch 32
#: in arrival order 256 ran mixed lengths 2.3x the plain signature, 512 and
#: 1024 the same within the run's noise, 2048 1.6x; larger sub-batches mix
#: lengths again and attention grows with the square of the longest row. The
#: encoder's fixed cost per call (a few hundred small ops) is what a smaller
#: budget would pay for.
DEFAULT_MAX_TOKENS = 256
#: Real tokens / padded tokens at or above which a batch runs as one. Measured
#: with the same sweep (idle-priority run, 2-core AMD EPYC): without it, batch
#: 32 of short texts (11-15 words, fill 0.76-0.80) ran at 0.61x the plain signature
#: on an idle machine (120 vs 199 texts/s), split into 256-token sub-batches
#: that only lose matmul efficiency; with 0.6 the short batch ran as fast as
#: plain (183 vs 184) and mixed batches (fill 0.23-0.35) were bucketed as before.
DEFAULT_MIN_FILL = 0.6
WHY_DEFAULT = ("measured (python -m bench._bucket_sweep, all-MiniLM-L6-v2, batch 32 in arrival order): 256 padded "
               "tokens per sub-batch ran mixed-length batches 2.1-2.3x the plain signature (512 and 1024 within "
               "the noise, 2048: 1.6x); batches whose real tokens fill >= 0.6 of the padded batch (short texts, "
               "client-sorted batches) run as one, because splitting them saved no padding and lost matmul "
               "efficiency (short texts at 0.61x plain without it)")

Run = Callable[[dict], dict]


@dataclass(frozen=True)
class BucketPolicy:
    """How string signatures cut a batch: sub-batches of at most `max_tokens` padded tokens.

    A batch whose real tokens fill at least `min_fill` of its padded batch
    (uniform lengths: short texts, a client's length-sorted batch) runs as one;
    `min_fill=0` leaves the decision to `max_tokens` alone.
    """

    max_tokens: int = DEFAULT_MAX_TOKENS
    min_fill: float = DEFAULT_MIN_FILL

    def __post_init__(self):
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive number of tokens, got {self.max_tokens}")
        if not 0.0 <= self.min_fill <= 1.0:
            raise ValueError(f"min_fill must be a fraction of the padded batch in [0, 1], got {self.min_fill}")

    def describe(self) -> dict:
        """What the model card says about it, and why the defaults are what they are."""
        return {"max_tokens": self.max_tokens, "min_fill": self.min_fill, "order": "token count, ascending",
                "plain_path": ("a single row, a batch whose rows x longest row fits max_tokens, or one whose "
                               "real tokens fill at least min_fill of it"),
                "default": {"max_tokens": DEFAULT_MAX_TOKENS, "min_fill": DEFAULT_MIN_FILL}, "why": WHY_DEFAULT}


def sequence_axes(shape: tf.TensorShape) -> list[int]:
    """The axes (after the batch axis) whose size the sequence length decides.

    Traced with a dynamic sequence length, those are the axes of unknown static
    size: [batch, seq, hidden] -> [1]; [batch, layers, heads, seq, seq] -> [3, 4];
    [batch, hidden] -> [].
    """
    return [axis for axis in range(1, shape.rank) if shape[axis] is None]


def run_in_buckets(encoded: dict[str, tf.Tensor], run: Run, *, max_tokens: int = DEFAULT_MAX_TOKENS,
                   min_fill: float = DEFAULT_MIN_FILL) -> dict:
    """`run(encoded)`, computed on length-ordered sub-batches; outputs in the original row order.

    `encoded` holds int [batch, seq] tensors padded to the longest row, one of
    them `attention_mask`; `run` maps such a dict to a dict of [batch, ...]
    outputs and must not depend on how rows are grouped (an encoder does not).
    """
    specs = {k: tf.TensorSpec([None, None], v.dtype, name=k) for k, v in encoded.items()}
    # One traced function, called by both paths: the encoder is in the graph once.
    encoder = tf.function(run, autograph=False).get_concrete_function(specs)
    mask = encoded["attention_mask"]
    batch, width = tf.shape(mask)[0], tf.shape(mask)[1]
    fits_one = tf.logical_or(batch <= 1, batch * width <= max_tokens)
    if min_fill > 0:  # 0: the fill never decides
        fill = tf.reduce_sum(tf.cast(mask, tf.float32)) / tf.cast(tf.maximum(batch * width, 1), tf.float32)
        fits_one = tf.logical_or(fits_one, fill >= min_fill)
    return tf.cond(fits_one, lambda: encoder(encoded),
                   lambda: _bucketed(encoded, encoder, max_tokens))


def _bucketed(encoded: dict, encoder, max_tokens: int) -> dict:
    lengths = tf.reduce_sum(tf.cast(encoded["attention_mask"], tf.int32), axis=1)
    width = tf.shape(encoded["attention_mask"])[1]
    order = tf.argsort(lengths, stable=True)
    ordered_lengths = tf.gather(lengths, order)
    ordered = {k: tf.gather(v, order) for k, v in encoded.items()}
    batch = tf.size(lengths)
    outputs = encoder.structured_outputs
    names = sorted(outputs)
    arrays = [tf.TensorArray(outputs[n].dtype, size=0, dynamic_size=True, infer_shape=False,
                             element_shape=outputs[n].shape) for n in names]

    def body(i, start, arrays):
        end = start + _rows_that_fit(ordered_lengths[start:], max_tokens)
        longest = ordered_lengths[end - 1]
        result = encoder({k: v[start:end, :longest] for k, v in ordered.items()})
        arrays = [a.write(i, _pad_to(result[n], sequence_axes(outputs[n].shape), width))
                  for a, n in zip(arrays, names)]
        return i + 1, end, arrays

    # One sub-batch at a time: the encoder's ops already use every core, and
    # peak memory stays that of the largest sub-batch.
    _, _, arrays = tf.while_loop(lambda i, start, arrays: start < batch, body, (0, 0, arrays),
                                 parallel_iterations=1)
    restore = tf.math.invert_permutation(order)
    result = {n: tf.gather(a.concat(), restore) for a, n in zip(arrays, names)}
    for n in names:  # the same static shapes as the plain path, so the SignatureDef does not change
        result[n].set_shape(outputs[n].shape)
    return result


def _rows_that_fit(lengths: tf.Tensor, max_tokens: int) -> tf.Tensor:
    """How many of the ascending `lengths` form a sub-batch of at most `max_tokens` padded tokens (>= 1).

    Row k (1-based) padded to its own length costs k * lengths[k-1], which only
    grows with k, so the rows that fit are a prefix.
    """
    rows = tf.range(1, tf.size(lengths) + 1)
    return tf.maximum(1, tf.reduce_sum(tf.cast(rows * lengths <= max_tokens, tf.int32)))


def _pad_to(t: tf.Tensor, axes: list[int], width: tf.Tensor) -> tf.Tensor:
    if not axes:
        return t
    shape = tf.shape(t)
    paddings = [[0, width - shape[a]] if a in axes else [0, 0] for a in range(t.shape.rank)]
    return tf.pad(t, paddings)
