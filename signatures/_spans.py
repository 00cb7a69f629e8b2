"""Offsets and word boundaries of tokens, in graph: what token-level tasks map back to text with.

The tokenizer gives BYTE offsets into the UTF-8 input; Python (and Hugging
Face's pipelines) count characters (code points). These helpers convert, cut
substrings and group tokens into words, all on ragged [batch, (tokens)] tensors.

>>> char_offsets(tf.constant(["é a"]), tf.ragged.constant([[0, 3]], tf.int64)).to_list()
[[0, 2]]
"""
from __future__ import annotations

import tensorflow as tf

__all__ = ["char_offsets", "substrings", "segment_starts", "first_and_last", "row_starts"]

_NO_CHAR = tf.int64.max  # pads the char-start table so searchsorted never lands on padding


def char_offsets(text: tf.Tensor, byte_offsets: tf.RaggedTensor) -> tf.RaggedTensor:
    """[batch] strings, [batch, (n)] byte offsets -> the same offsets in characters (int32).

    A byte offset's character index is the number of characters that start
    before it, so both start offsets and exclusive end offsets convert.
    """
    _, starts = tf.strings.unicode_decode_with_offsets(text, "UTF-8", errors="replace")
    table = starts.to_tensor(default_value=_NO_CHAR)
    table = tf.concat([table, tf.fill([tf.shape(table)[0], 1], _NO_CHAR)], axis=1)  # never empty
    offsets = tf.cast(byte_offsets, tf.int64)
    index = tf.searchsorted(table, offsets.to_tensor(), side="left", out_type=tf.int32)
    return tf.RaggedTensor.from_tensor(index, lengths=offsets.row_lengths())


def substrings(text: tf.Tensor, rows: tf.Tensor, byte_starts: tf.Tensor, byte_ends: tf.Tensor) -> tf.Tensor:
    """text[rows][start:end] by bytes, flat: one substring per (row, start, end)."""
    source = tf.gather(text, rows)
    size = tf.strings.length(source)  # clamped: Substr fails the whole request on an offset past the end
    starts = tf.clip_by_value(tf.cast(byte_starts, tf.int32), 0, size)
    ends = tf.clip_by_value(tf.cast(byte_ends, tf.int32), starts, size)
    return tf.strings.substr(source, starts, ends - starts, unit="BYTE")


def segment_starts(new: tf.Tensor, row_starts: tf.Tensor) -> tf.Tensor:
    """Flat segment ids for flat `new` flags, a row's first element always opening a segment."""
    return tf.cumsum(tf.cast(new | row_starts, tf.int32)) - 1


def first_and_last(segment: tf.Tensor, count: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Flat index of the first and the last element of each segment (segment ids sorted)."""
    positions = tf.range(tf.shape(segment)[0])
    n = tf.reduce_max(segment) + 1 if count is None else count
    n = tf.maximum(n, 0)
    return (tf.math.unsorted_segment_min(positions, segment, n),
            tf.math.unsorted_segment_max(positions, segment, n))


def row_starts(ragged: tf.RaggedTensor) -> tf.Tensor:
    """Flat bool: is this element the first of its row?"""
    flags = tf.zeros([tf.shape(ragged.flat_values)[0]], tf.bool)
    firsts = ragged.row_starts()[ragged.row_lengths() > 0]
    return tf.tensor_scatter_nd_update(flags, tf.expand_dims(tf.cast(firsts, tf.int32), 1),
                                       tf.ones_like(firsts, tf.bool))

