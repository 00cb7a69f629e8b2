"""The special-token template every tokenizer family packs its segments into.

One layer shared by WordPiece, byte-level BPE and SentencePiece (Hugging
Face's post-processor stage): `start A end` for one segment,
`start A end middle B end` for a pair, with `longest_first` truncation to a
total length and padding to the longest row of the batch.

>>> bert = SegmentPacker(start=[101], end=[102], pad_id=0)                 # [CLS] a [SEP] b [SEP]
>>> roberta = SegmentPacker(start=[0], end=[2], middle=[2], pad_id=1)      # <s> a </s></s> b </s>
>>> bert([tf.ragged.constant([[7592, 2088]], tf.int32)], max_length=8)["input_ids"]
<tf.Tensor: shape=(1, 4), dtype=int32, numpy=array([[ 101, 7592, 2088,  102]], dtype=int32)>
"""
from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

__all__ = ["SegmentPacker", "TEMPLATES", "longest_first", "keep_first"]

# Hugging Face's post-processors by name: BertProcessing and RobertaProcessing.
TEMPLATES = {
    "bert": "[CLS] A [SEP] B [SEP]",
    "roberta": "<s> A </s></s> B </s>",
}


class SegmentPacker(tf.Module):
    """Segments of ids -> `input_ids`, `attention_mask`, `token_type_ids`, `segment_ids`.

    Args:
        start: ids before the first segment (`[CLS]`, `<s>`).
        end: ids after each segment (`[SEP]`, `</s>`).
        middle: ids between a pair's first `end` and the second segment
            (RoBERTa's second `</s>`); empty for BERT.
        pad_id: the padding id.

    `token_type_ids` follow BERT: 0 up to and including the first segment's
    end tokens, 1 after. `segment_ids` are 0 / 1 for the tokens of the first /
    second segment and -1 for special tokens and padding.
    """

    def __init__(self, *, start: Sequence[int], end: Sequence[int], pad_id: int,
                 middle: Sequence[int] = (), name: str | None = None):
        super().__init__(name=name)
        self.start, self.end, self.middle = list(start), list(end), list(middle)
        self.pad_id = int(pad_id)

    @classmethod
    def from_template(cls, template: str, *, cls_id: int, sep_id: int, pad_id: int) -> "SegmentPacker":
        """The packer of a template in `TEMPLATES` (BERT's or RoBERTa's)."""
        if template not in TEMPLATES:
            raise ValueError(f"template must be one of {sorted(TEMPLATES)}, got {template!r}")
        middle = [sep_id] if template == "roberta" else []
        return cls(start=[cls_id], end=[sep_id], middle=middle, pad_id=pad_id, name=f"{template}_packer")

    def num_special_tokens(self, segments: int) -> int:
        """How many special tokens the template adds around `segments` (1 or 2) segments."""
        if segments not in (1, 2):
            raise ValueError(f"the template packs one or two segments, got {segments}")
        return len(self.start) + len(self.end) * segments + len(self.middle) * (segments - 1)

    def truncate(self, segments: list[tf.RaggedTensor], max_length: int) -> list[tf.RaggedTensor]:
        """Hugging Face's `longest_first` truncation to `max_length` tokens, special tokens included."""
        budget = max(0, max_length - self.num_special_tokens(len(segments)))
        if len(segments) == 1:
            return [keep_first(segments[0], tf.minimum(segments[0].row_lengths(), budget))]
        keep_a, keep_b = longest_first(segments[0].row_lengths(), segments[1].row_lengths(), budget)
        return [keep_first(segments[0], keep_a), keep_first(segments[1], keep_b)]

    def __call__(self, segments: list[tf.RaggedTensor], max_length: int) -> dict[str, tf.Tensor]:
        segments = self.truncate([tf.cast(s, tf.int32) for s in segments], max_length)
        batch = segments[0].nrows()

        def special(ids: list[int]) -> tf.RaggedTensor:
            row = tf.constant(ids, tf.int32, shape=[len(ids)])
            return tf.RaggedTensor.from_tensor(tf.tile(row[tf.newaxis], [batch, 1]))

        parts = [(special(self.start), 0, -1)]
        for index, segment in enumerate(segments):
            if index:
                parts.append((special(self.middle), 1, -1))
            parts += [(segment, index, index), (special(self.end), index, -1)]
        ids = tf.concat([p for p, _, _ in parts], axis=1)
        type_ids = tf.concat([tf.ones_like(p) * t for p, t, _ in parts], axis=1)
        segment_ids = tf.concat([tf.ones_like(p) * s for p, _, s in parts], axis=1)
        return {
            "input_ids": ids.to_tensor(default_value=self.pad_id),
            "attention_mask": tf.ones_like(ids).to_tensor(default_value=0),
            "token_type_ids": type_ids.to_tensor(default_value=0),
            "segment_ids": segment_ids.to_tensor(default_value=-1),
        }


def longest_first(len_a: tf.Tensor, len_b: tf.Tensor, budget: int) -> tuple[tf.Tensor, tf.Tensor]:
    """How many pieces of each segment Hugging Face's `longest_first` keeps.

    Mirrors `tokenizers`' truncate_encodings: when the pair is too long, the
    shorter segment keeps at most budget // 2 and the longer one the rest
    (ties count the first segment as the shorter one).
    """
    swap = len_a > len_b
    short = tf.where(swap, len_b, len_a)
    long = tf.where(swap, len_a, len_b)
    over = len_a + len_b > budget
    half = tf.constant(budget // 2, len_a.dtype)
    short_kept = tf.where(over & (short > half), half, short)
    long_kept = tf.where(over, tf.constant(budget, len_a.dtype) - short_kept, long)
    return tf.where(swap, long_kept, short_kept), tf.where(swap, short_kept, long_kept)


def keep_first(pieces: tf.RaggedTensor, keep: tf.Tensor) -> tf.RaggedTensor:
    """The first `keep[i]` pieces of each row `i`."""
    positions = tf.ragged.range(pieces.row_lengths())
    return tf.ragged.boolean_mask(pieces, positions < tf.expand_dims(keep, 1))
