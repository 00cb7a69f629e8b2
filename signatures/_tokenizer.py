"""The one interface every in-graph tokenizer family implements.

A tokenizer turns a [batch] string tensor into the model's inputs in two
stages that callers may also run apart (token-level tasks need the offsets):

>>> ids, starts, ends = tok.tokenize_with_offsets(tf.constant(["Hello world!"]))
>>> ids                                    # [batch, (tokens)] int32, no special tokens
<tf.RaggedTensor [[7592, 2088, 999]]>
>>> starts, ends                           # byte offsets into the UTF-8 input
(<tf.RaggedTensor [[0, 6, 11]]>, <tf.RaggedTensor [[5, 11, 12]]>)
>>> tok.pack([ids])["input_ids"]           # the family's template, truncated and padded
<tf.Tensor: shape=(1, 5), dtype=int32, numpy=array([[ 101, 7592, 2088,  999,  102]], dtype=int32)>
>>> tok(tf.constant(["Hello world!"]))     # the two at once: input_ids, attention_mask (, token_type_ids)

The algorithm (WordPiece, byte-level BPE, SentencePiece) is a subclass, one
module each; the template is a `SegmentPacker` shared by all of them.
"""
from __future__ import annotations

import tensorflow as tf

from signatures._packer import SegmentPacker

__all__ = ["Tokenizer", "special_ids", "WHITESPACE"]

# Oniguruma's `\s` with Unicode, which Hugging Face's regexes mean; RE2's `\s` is ASCII only.
WHITESPACE = r"[\t\n\x{0B}\f\r\x{85}\p{Z}]"


class Tokenizer(tf.Module):
    """Base of the in-graph tokenizers: strings -> padded int32 model inputs.

    Subclasses implement `tokenize_with_offsets` (and may override `tokenize`
    with a path that skips the offsets) and `get_vocabulary`.

    Attributes:
        max_length: total length of a packed row, special tokens included.
        uses_token_type_ids: whether `__call__` returns `token_type_ids`.
        pad_id, cls_id, sep_id, unk_id, mask_id: special-token ids, in
            Hugging Face's names (`<s>` is RoBERTa's cls token, `</s>` its
            sep token); `mask_id` is None when the vocabulary has no mask.
        vocab_size: number of ids.
    """

    def __init__(self, *, max_length: int, uses_token_type_ids: bool, packer: SegmentPacker,
                 special_ids: dict[str, int | None], vocab_size: int, name: str | None = None):
        super().__init__(name=name)
        self.packer = packer
        self.max_length = int(max_length)
        self.uses_token_type_ids = bool(uses_token_type_ids)
        self.vocab_size = int(vocab_size)
        self.special_ids = dict(special_ids)
        self.pad_id = packer.pad_id
        self.cls_id = special_ids.get("cls")
        self.sep_id = special_ids.get("sep")
        self.unk_id = special_ids.get("unk")
        self.mask_id = special_ids.get("mask")
        needed = packer.num_special_tokens(1) + 1
        if self.max_length < needed:
            raise ValueError(f"max_length must be at least {needed} (one token and the template's special "
                             f"tokens), got {max_length}")

    def tokenize_with_offsets(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """[batch] strings -> ids, starts, ends: [batch, (tokens)] int32 ids without special tokens or
        truncation, and each token's start / end byte offset into its UTF-8 input string."""
        raise NotImplementedError

    def tokenize_with_words(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, ...]:
        """`tokenize_with_offsets` plus `opens`: [batch, (tokens)] bool, True where a token opens a word
        of the pre-tokenizer (where Hugging Face's `word_ids()` changes: what question answering aligns
        answers to), or None where the vocabulary tells it (WordPiece's `##`, SentencePiece's `▁`)."""
        return (*self.tokenize_with_offsets(text), None)

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor:
        """[batch] strings -> [batch, (tokens)] int32 ids, no special tokens, no truncation."""
        return self.tokenize_with_offsets(text)[0]

    def get_vocabulary(self) -> list[str]:
        """The token string of every id, in id order (for reports and warmup requests)."""
        raise NotImplementedError

    def pack(self, segments: list[tf.RaggedTensor], max_length: int | None = None) -> dict[str, tf.Tensor]:
        """One or two segments of ids -> the family's template, `longest_first`-truncated, padded.

        Returns `input_ids`, `attention_mask`, `token_type_ids` (when the
        family uses them) and `segment_ids`, all int32 [batch, seq]:
        `segment_ids` is 0 / 1 for tokens of the first / second segment and
        -1 for special tokens and padding.
        """
        packed = self.packer(segments, self.max_length if max_length is None else max_length)
        if not self.uses_token_type_ids:
            del packed["token_type_ids"]
        return packed

    def __call__(self, text: tf.Tensor, text_pair: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """Strings (and their pairs) -> `input_ids`, `attention_mask` (, `token_type_ids`)."""
        segments = [self.tokenize(text)] + ([] if text_pair is None else [self.tokenize(text_pair)])
        packed = self.pack(segments)
        del packed["segment_ids"]
        return packed


def special_ids(vocab: dict[str, int], source: str, **tokens: str) -> dict[str, int | None]:
    """Look up special tokens (cls=..., sep=..., unk=..., pad=..., mask=...) in a vocabulary.

    Every one but `mask` must be there; the error names the missing ones and the file.
    """
    missing = [token for role, token in tokens.items() if role != "mask" and token not in vocab]
    if missing:
        raise ValueError(f"special tokens {missing} are not in the vocabulary {source}; "
                         "pass the checkpoint's own tokenizer files")
    return {role: vocab.get(token) for role, token in tokens.items()}
