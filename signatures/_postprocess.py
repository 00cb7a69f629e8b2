"""Post-processing that turns model outputs into what a client wants."""
from __future__ import annotations

import tensorflow as tf

__all__ = ["POOLINGS", "pool", "l2_normalize", "classify"]

POOLINGS = ("mean", "cls", "max")


def pool(hidden: tf.Tensor, attention_mask: tf.Tensor, mode: str = "mean") -> tf.Tensor:
    """[batch, seq, hidden] -> [batch, hidden], ignoring padding.

    `mean` is sentence-transformers' mean pooling: the sum of the unmasked
    token vectors over max(count, 1e-9).
    """
    mask = tf.cast(tf.expand_dims(attention_mask, -1), hidden.dtype)
    if mode == "mean":
        return tf.reduce_sum(hidden * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return tf.reduce_max(hidden + (mask - 1.0) * 1e9, axis=1)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}")


def l2_normalize(x: tf.Tensor) -> tf.Tensor:
    """Like torch.nn.functional.normalize(p=2, dim=1): x / max(||x||, 1e-12)."""
    return x / tf.maximum(tf.norm(x, axis=-1, keepdims=True), 1e-12)


def classify(logits: tf.Tensor, labels: list[str], multi_label: bool = False) -> dict[str, tf.Tensor]:
    """logits -> probabilities, the best label (string) and its score."""
    probabilities = tf.sigmoid(logits) if multi_label else tf.nn.softmax(logits, axis=-1)
    best = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return {
        "logits": logits,
        "probabilities": probabilities,
        "label": tf.gather(tf.constant(labels, tf.string), best),
        "score": tf.reduce_max(probabilities, axis=-1),
    }
