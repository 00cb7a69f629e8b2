"""An in-graph BERT WordPiece tokenizer built from tensorflow-text ops.

It reproduces what Hugging Face's `BertTokenizerFast` does (normaliser,
pre-tokeniser, WordPiece, `[CLS] a [SEP] b [SEP]` template, `longest_first`
truncation) with ops that `tensorflow_model_server` links, so a SavedModel can
take raw strings:

>>> tok = WordPieceTokenizer(vocab_file, lower_case=True, max_length=128)
>>> tok(tf.constant(["Hello world!"]))["input_ids"]
<tf.Tensor: shape=(1, 5), dtype=int32, numpy=array([[ 101, 7592, 2088,  999,  102]], dtype=int32)>

The normalisation is done with core ops plus `NormalizeUTF8` rather than
FastBertTokenizer's `FastBertNormalize` (`lower_case_nfd_strip_accents`): that op
needs TF Serving >= 2.12 where FastWordpieceTokenizer alone runs on >= 2.10, and it
case-folds (``ß`` -> ``ss``) and applies NFKC (``ﬁ`` -> ``fi``) where
Hugging Face lower-cases and applies NFD only; measured on MiniLM's vocabulary
this removes those mismatches. Known remaining differences (reported by the
export's tokenizer parity check, never hidden): special-token strings such as
``[CLS]`` inside the text are split like words, and ICU lower-cases a final
capital sigma to ``ς``.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

__all__ = ["WordPieceTokenizer", "TOKENIZER_KINDS"]

TOKENIZER_KINDS = ("fast", "classic")

# Hugging Face's BertNormalizer(clean_text=True): drop NUL, U+FFFD and control
# characters (Cc, Cf) except tab/newline/CR, which count as whitespace.
_CONTROL = r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}\x{FFFD}\p{Cf}]"
_WHITESPACE = r"[\t\n\r\p{Zs}]"


class WordPieceTokenizer(tf.Module):
    """Strings -> `input_ids`, `attention_mask`, `token_type_ids` (int32, padded).

    Args:
        vocab_file: WordPiece vocabulary, one token a line; saved as a
            SavedModel asset so the exported model carries it.
        lower_case: lower-case the text (`do_lower_case`).
        strip_accents: NFD + drop combining marks; `None` follows `lower_case`
            as in Hugging Face.
        max_length: total length including special tokens.
        kind: "fast" (FastWordpieceTokenizer with its own BERT pre-tokenisation,
            one `FastWordpieceTokenizeWithOffsets` op, TF Serving >= 2.10) or
            "classic" (BertTokenizer's ops, TF Serving >= 2.2).
        cls_token, sep_token, unk_token, pad_token: special tokens, looked up
            in the vocabulary.
    """

    def __init__(self, vocab_file: str, *, lower_case: bool = True, strip_accents: bool | None = None,
                 max_length: int = 512, kind: str = "fast", cls_token: str = "[CLS]",
                 sep_token: str = "[SEP]", unk_token: str = "[UNK]", pad_token: str = "[PAD]",
                 max_chars_per_word: int = 100, name: str | None = None):
        super().__init__(name=name)
        if kind not in TOKENIZER_KINDS:
            raise ValueError(f"tokenizer kind must be one of {TOKENIZER_KINDS}, got {kind!r}")
        if max_length < 3:
            raise ValueError(f"max_length must be at least 3 (room for [CLS] x [SEP]), got {max_length}")
        with open(vocab_file, encoding="utf-8") as f:
            vocab = [line.rstrip("\n") for line in f]
        index = {token: i for i, token in enumerate(vocab)}
        missing = [t for t in (cls_token, sep_token, unk_token, pad_token) if t not in index]
        if missing:
            raise ValueError(f"special tokens {missing} are not in the vocabulary {vocab_file}; "
                             "pass the checkpoint's own vocab.txt")
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        self.vocab_size = len(vocab)
        self.lower_case = lower_case
        self.strip_accents = lower_case if strip_accents is None else strip_accents
        self.max_length = max_length
        self.kind = kind
        self.cls_id = index[cls_token]
        self.sep_id = index[sep_token]
        self.pad_id = index[pad_token]
        if kind == "fast":
            # The compiled FastWordpiece model is a constant of the graph; the
            # vocabulary asset above stays the source of truth.
            self._wordpiece = tf_text.FastWordpieceTokenizer(
                vocab=vocab, suffix_indicator="##", max_bytes_per_word=max_chars_per_word,
                token_out_type=tf.int64, unknown_token=unk_token, no_pretokenization=False,
                support_detokenization=False)
        else:
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(self.vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                              tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER),
                default_value=-1)
            self._wordpiece = tf_text.BertTokenizer(
                self._table, suffix_indicator="##", max_bytes_per_word=max_chars_per_word,
                token_out_type=tf.int64, unknown_token=unk_token, lower_case=False)

    def normalize(self, text: tf.Tensor) -> tf.Tensor:
        """Hugging Face's BertNormalizer, in graph."""
        text = tf.strings.regex_replace(text, _CONTROL, "")
        text = tf.strings.regex_replace(text, _WHITESPACE, " ")
        if self.lower_case:
            text = tf.strings.lower(text, encoding="utf-8")
        if self.strip_accents:
            text = tf_text.normalize_utf8(text, "NFD")
            text = tf.strings.regex_replace(text, r"\p{Mn}", "")
        return text

    def wordpieces(self, text: tf.Tensor) -> tf.RaggedTensor:
        """[batch] strings -> [batch, (pieces)] int64 ids, no special tokens."""
        pieces = self._wordpiece.tokenize(self.normalize(text))
        if pieces.ragged_rank > 1:  # BertTokenizer keeps a words dimension
            pieces = pieces.merge_dims(-2, -1)
        return pieces

    def __call__(self, text: tf.Tensor, text_pair: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        first = self.wordpieces(text)
        if text_pair is None:
            first = _keep_first(first, tf.minimum(first.row_lengths(), self.max_length - 2))
            segments = [first]
        else:
            second = self.wordpieces(text_pair)
            keep_a, keep_b = longest_first(first.row_lengths(), second.row_lengths(), self.max_length - 3)
            segments = [_keep_first(first, keep_a), _keep_first(second, keep_b)]
        return self.pack(segments)

    def pack(self, segments: list[tf.RaggedTensor]) -> dict[str, tf.Tensor]:
        """`[CLS] a [SEP] (b [SEP])`, padded to the longest row of the batch."""
        batch = segments[0].nrows()
        cls = tf.fill([batch, 1], tf.constant(self.cls_id, tf.int64))
        sep = tf.fill([batch, 1], tf.constant(self.sep_id, tf.int64))
        parts, types = [cls], [tf.zeros_like(cls)]
        for type_id, segment in enumerate(segments):
            parts += [segment, sep]
            types += [tf.ones_like(segment) * type_id, tf.ones_like(sep) * type_id]
        ids = tf.concat(parts, axis=1)
        type_ids = tf.concat(types, axis=1)
        return {
            "input_ids": tf.cast(ids.to_tensor(default_value=self.pad_id), tf.int32),
            "attention_mask": tf.cast(tf.ones_like(ids).to_tensor(default_value=0), tf.int32),
            "token_type_ids": tf.cast(type_ids.to_tensor(default_value=0), tf.int32),
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


def _keep_first(pieces: tf.RaggedTensor, keep: tf.Tensor) -> tf.RaggedTensor:
    """The first `keep[i]` pieces of each row `i`."""
    positions = tf.ragged.range(pieces.row_lengths())
    return tf.ragged.boolean_mask(pieces, positions < tf.expand_dims(keep, 1))
