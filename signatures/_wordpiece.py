"""An in-graph WordPiece tokenizer built from tensorflow-text ops (BERT, ELECTRA, DistilBERT, MPNet).

It reproduces what Hugging Face's `BertTokenizerFast` / `MPNetTokenizerFast`
do (normaliser, pre-tokeniser, WordPiece, then the family's template and
`longest_first` truncation) with ops that `tensorflow_model_server` links, so
a SavedModel can take raw strings:

>>> tok = WordPieceTokenizer(vocab_file, lower_case=True, max_length=128)
>>> tok(tf.constant(["Hello world!"]))["input_ids"]
<tf.Tensor: shape=(1, 5), dtype=int32, numpy=array([[ 101, 7592, 2088,  999,  102]], dtype=int32)>

The normalisation is done with core ops plus `NormalizeUTF8` rather than
FastBertTokenizer's `FastBertNormalize` (`lower_case_nfd_strip_accents`): that op
needs TF Serving >= 2.12 where FastWordpieceTokenizer alone runs on >= 2.10, and it
case-folds (``ß`` -> ``ss``) and applies NFKC (``ﬁ`` -> ``fi``) where
Hugging Face lower-cases and applies NFD only; measured on MiniLM's vocabulary
this removes those mismatches. Known remaining difference (reported by the
export's tokenizer parity check, never hidden): special-token strings such as
``[CLS]`` inside the text are split like words.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

from signatures._packer import SegmentPacker
from signatures._tokenizer import Tokenizer, special_ids

__all__ = ["WordPieceTokenizer", "TOKENIZER_KINDS"]

TOKENIZER_KINDS = ("fast", "classic")

# Hugging Face's BertNormalizer(clean_text=True): drop NUL, U+FFFD and control
# characters (Cc, Cf) except tab/newline/CR, which count as whitespace.
_CONTROL = r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}\x{FFFD}\p{Cf}]"
_WHITESPACE = r"[\t\n\r\p{Zs}]"


class WordPieceTokenizer(Tokenizer):
    """Strings -> `input_ids`, `attention_mask` (, `token_type_ids`), int32, padded.

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
        template: "bert" (`[CLS] a [SEP] b [SEP]`) or "roberta"
            (`<s> a </s></s> b </s>`, MPNet).
        uses_token_type_ids: whether the model takes `token_type_ids`.
        cls_token, sep_token, unk_token, pad_token, mask_token: special
            tokens, looked up in the vocabulary (`mask_token` may be absent).
    """

    def __init__(self, vocab_file: str, *, lower_case: bool = True, strip_accents: bool | None = None,
                 max_length: int = 512, kind: str = "fast", template: str = "bert",
                 uses_token_type_ids: bool = True, cls_token: str = "[CLS]", sep_token: str = "[SEP]",
                 unk_token: str = "[UNK]", pad_token: str = "[PAD]", mask_token: str = "[MASK]",
                 max_chars_per_word: int = 100, name: str | None = None):
        if kind not in TOKENIZER_KINDS:
            raise ValueError(f"tokenizer kind must be one of {TOKENIZER_KINDS}, got {kind!r}")
        with open(vocab_file, encoding="utf-8") as f:
            vocab = [line.rstrip("\n") for line in f]
        if vocab and vocab[-1] == "":
            vocab.pop()
        index = {token: i for i, token in enumerate(vocab)}
        ids = special_ids(index, vocab_file, cls=cls_token, sep=sep_token, unk=unk_token, pad=pad_token,
                          mask=mask_token)
        packer = SegmentPacker.from_template(template, cls_id=ids["cls"], sep_id=ids["sep"], pad_id=ids["pad"])
        super().__init__(max_length=max_length, uses_token_type_ids=uses_token_type_ids, packer=packer,
                         special_ids=ids, vocab_size=len(vocab), name=name)
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        self.lower_case = lower_case
        self.strip_accents = lower_case if strip_accents is None else strip_accents
        self.kind = kind
        self.template = template
        if kind == "fast":
            # The compiled FastWordpiece model is a constant of the graph; the
            # vocabulary asset above stays the source of truth.
            self._wordpiece = tf_text.FastWordpieceTokenizer(
                vocab=vocab, suffix_indicator="##", max_bytes_per_word=max_chars_per_word,
                token_out_type=tf.int32, unknown_token=unk_token, no_pretokenization=False,
                support_detokenization=False)
        else:
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(self.vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                              tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER),
                default_value=-1)
            self._wordpiece = tf_text.BertTokenizer(
                self._table, suffix_indicator="##", max_bytes_per_word=max_chars_per_word,
                token_out_type=tf.int64, unknown_token=unk_token, lower_case=False)

    def get_vocabulary(self) -> list[str]:
        with open(self.vocab_file.asset_path.numpy().decode(), encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f][:self.vocab_size]

    def normalize(self, text: tf.Tensor) -> tf.Tensor:
        """Hugging Face's BertNormalizer, in graph."""
        text = tf.strings.regex_replace(text, _CONTROL, "")
        text = tf.strings.regex_replace(text, _WHITESPACE, " ")
        if self.lower_case:
            # Hugging Face lower-cases character by character; ICU would make a final Σ a ς.
            text = tf.strings.lower(tf.strings.regex_replace(text, "Σ", "σ"), encoding="utf-8")
        if self.strip_accents:
            text = tf_text.normalize_utf8(text, "NFD")
            text = tf.strings.regex_replace(text, r"\p{Mn}", "")
        return text

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor:
        pieces = self._wordpiece.tokenize(self.normalize(text))
        if pieces.ragged_rank > 1:  # BertTokenizer keeps a words dimension
            pieces = pieces.merge_dims(-2, -1)
        return tf.cast(pieces, tf.int32)

    def tokenize_with_offsets(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        pieces, starts, ends = self._wordpiece.tokenize_with_offsets(self.normalize(text))
        if pieces.ragged_rank > 1:
            pieces, starts, ends = (t.merge_dims(-2, -1) for t in (pieces, starts, ends))
        starts, ends = self._source_offsets(text, starts, ends)
        return tf.cast(pieces, tf.int32), starts, ends

    def _source_offsets(self, text: tf.Tensor, starts: tf.RaggedTensor,
                        ends: tf.RaggedTensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
        """Byte offsets into the normalised text -> byte offsets into `text`.

        The normaliser works character by character (control characters go,
        accents go, case changes byte lengths: ``İ`` is 2 bytes, ``i̇`` 3), so
        normalising each character alone gives how many normalised bytes it
        became; a piece starts in the character whose normalised bytes hold its
        first byte and ends with the one holding its last, as Hugging Face's
        alignments do.
        """
        chars, char_starts = tf.strings.unicode_split_with_offsets(text, "UTF-8")
        char_bytes = tf.strings.length(chars).to_tensor()
        char_starts = char_starts.to_tensor()
        normalized = tf.ragged.map_flat_values(lambda c: tf.strings.length(self.normalize(c)), chars)
        big = tf.int64.max // 2  # padding chars sort after every offset
        norm_ends = tf.cumsum(tf.cast(normalized.to_tensor(), tf.int64), axis=1)
        norm_ends = tf.where(tf.sequence_mask(chars.row_lengths(), tf.shape(norm_ends)[1]), norm_ends, big)
        last = tf.maximum(tf.shape(norm_ends, out_type=tf.int64)[1] - 1, 0)

        def char_of(byte: tf.RaggedTensor) -> tf.Tensor:
            found = tf.searchsorted(norm_ends, tf.cast(byte.to_tensor(), tf.int64), side="right", out_type=tf.int64)
            return tf.minimum(found, last)

        first = char_of(starts)
        final = char_of(ends - 1)
        source_starts = tf.gather(char_starts, first, batch_dims=1)
        source_ends = tf.gather(char_starts, final, batch_dims=1) + tf.cast(
            tf.gather(char_bytes, final, batch_dims=1), tf.int64)
        lengths = starts.row_lengths()
        return (tf.RaggedTensor.from_tensor(source_starts, lengths=lengths),
                tf.RaggedTensor.from_tensor(source_ends, lengths=lengths))
