"""An in-graph SentencePiece tokenizer (XLM-RoBERTa; ALBERT-style models are one more setting).

tensorflow-text's SentencePiece ops run the checkpoint's own model (its
normaliser, its unigram or BPE pieces); the serialized model is a constant of
the graph and the file is carried as a SavedModel asset. Offsets are
tensorflow-text's, with the whitespace SentencePiece folds into `▁` left out
of the span. What differs between
families is only how SentencePiece's ids map to the checkpoint's:

- XLM-RoBERTa (fairseq): `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, every
  SentencePiece id shifted by one (`id_offset=1`), `<mask>` appended last.
- ALBERT, T5-style: the SentencePiece ids are the model's (`id_offset=0`),
  special tokens are pieces of the model itself.

>>> tok = SentencePieceTokenizer("sentencepiece.bpe.model", max_length=128, id_offset=1,
...                              special_tokens={"cls": 0, "pad": 1, "sep": 2, "unk": 3}, appended=["mask"])
>>> tok(tf.constant(["Hello world!"]))["input_ids"]
<tf.Tensor: shape=(1, 5), dtype=int32, numpy=array([[    0, 35378,  8999,    38,     2]], dtype=int32)>
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

from signatures._packer import SegmentPacker
from signatures._tokenizer import WHITESPACE, Tokenizer

__all__ = ["SentencePieceTokenizer"]


class SentencePieceTokenizer(Tokenizer):
    """Strings -> `input_ids`, `attention_mask` (, `token_type_ids`) through a SentencePiece model.

    Args:
        model_file: the serialized SentencePiece model (`sentencepiece.bpe.model`, `spiece.model`).
        max_length: total length including special tokens.
        id_offset: added to every SentencePiece id (1 for fairseq's XLM-R dictionary).
        special_tokens: `cls`, `sep`, `pad`, `unk` (and `mask`): an id in the model's id
            space, or a piece of the SentencePiece model (ALBERT's "[CLS]"); SentencePiece's
            own unknown id maps to `unk`.
        appended: special tokens whose ids follow the pieces, in order (XLM-R's `mask`).
        vocab_size: the model's vocabulary size (the embedding rows); checked against the
            SentencePiece model plus `id_offset` and the ids in `special_tokens`.
        template: "roberta" (`<s> a </s></s> b </s>`) or "bert" (`[CLS] a [SEP] b [SEP]`).
        uses_token_type_ids: whether the model takes `token_type_ids`.
    """

    def __init__(self, model_file: str, *, max_length: int = 512, id_offset: int = 0,
                 special_tokens: dict[str, int | str], appended: tuple[str, ...] = (), vocab_size: int | None = None,
                 template: str = "roberta",
                 uses_token_type_ids: bool = False, name: str | None = None):
        with open(model_file, "rb") as f:
            model = f.read()
        try:
            self._sentencepiece = tf_text.SentencepieceTokenizer(model=model, out_type=tf.int32)
            pieces = int(self._sentencepiece.vocab_size())
            sp_unk = int(self._sentencepiece.string_to_id("<unk>"))
        except (tf.errors.InvalidArgumentError, tf.errors.InternalError) as exc:
            raise ValueError(f"{model_file} is not a SentencePiece model: {exc.message}") from None
        special_tokens = {role: self._piece_id(token, model_file) + id_offset if isinstance(token, str) else token
                          for role, token in special_tokens.items()}
        special_tokens.update({role: pieces + id_offset + i for i, role in enumerate(appended)})
        size = max([pieces + id_offset] + [i + 1 for i in special_tokens.values() if i is not None])
        if vocab_size is not None and vocab_size != size:
            raise ValueError(f"{model_file} has {pieces} pieces, which with id offset {id_offset} and the special "
                             f"tokens make {size} ids, but the vocabulary has {vocab_size}; the SentencePiece "
                             "model does not belong to this checkpoint")
        packer = SegmentPacker.from_template(template, cls_id=special_tokens["cls"], sep_id=special_tokens["sep"],
                                             pad_id=special_tokens["pad"])
        super().__init__(max_length=max_length, uses_token_type_ids=uses_token_type_ids, packer=packer,
                         special_ids=special_tokens, vocab_size=size, name=name)
        self.model_file = tf.saved_model.Asset(model_file)
        self.id_offset = id_offset
        self.template = template
        self._sp_unk = sp_unk
        space = int(self._sentencepiece.string_to_id("▁"))
        self._space_piece = -1 if space == sp_unk else space  # the `▁` piece, whose span is a space

    def _piece_id(self, piece: str, model_file: str) -> int:
        found = int(self._sentencepiece.string_to_id(piece))
        if found == int(self._sentencepiece.string_to_id("<unk>")) and piece != "<unk>":
            raise ValueError(f"special token {piece!r} is not a piece of {model_file}")
        return found

    def get_vocabulary(self) -> list[str]:
        pieces = self._sentencepiece.id_to_string(tf.range(self._sentencepiece.vocab_size())).numpy()
        tokens = [f"<{i}>" for i in range(self.vocab_size)]
        for i, piece in enumerate(pieces):
            tokens[i + self.id_offset] = piece.decode("utf-8", "replace")
        if self.id_offset:  # fairseq's special tokens are not pieces of the model
            names = {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"}
            for role, i in self.special_ids.items():
                if i is not None:
                    tokens[i] = names[role]
        return tokens

    def _to_model_ids(self, pieces: tf.RaggedTensor) -> tf.RaggedTensor:
        values = pieces.flat_values
        mapped = tf.where(values == self._sp_unk, self.unk_id, values + self.id_offset)
        return pieces.with_flat_values(tf.cast(mapped, tf.int32))

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor:
        return self._to_model_ids(self._sentencepiece.tokenize(text))

    def tokenize_with_offsets(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        text = tf.convert_to_tensor(text)
        pieces, starts, ends = self._sentencepiece.tokenize_with_offsets(text)
        lone = tf.equal(pieces.flat_values, self._space_piece)
        starts, ends = hugging_face_offsets(text, tf.cast(starts, tf.int64), tf.cast(ends, tf.int64), lone)
        return self._to_model_ids(pieces), starts, ends


_BIG = tf.int64.max // 2  # pads position tables so searchsorted never lands on padding
# What the normaliser folds into a `▁` or drops before a word: whitespace, controls, zero-width characters.
_FOLDED = r"[\t\n\x{0B}\f\r\x{85}\p{Z}\p{Cc}\p{Cf}]"


def hugging_face_offsets(text: tf.Tensor, starts: tf.RaggedTensor, ends: tf.RaggedTensor,
                         lone: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """SentencePiece's byte spans -> the spans Hugging Face's fast tokenizer (Metaspace) gives.

    `lone` (flat bool) marks the pieces that are a `▁` alone. Two conventions
    differ. The `▁` of a word stands for the whitespace before it:
    SentencePiece spans the whole run (and nothing at the start of the text),
    Hugging Face the run's last character only (its normaliser collapses
    `" {2,}"` into that one, and keeps the `\\r` of `\\r\\n`); the `▁` added
    before a text spans the text's first character. And a piece inside a
    character the normaliser expands (`ﬁ` -> `f i`, `½` -> `1⁄2`) spans nothing
    in SentencePiece, that whole character in Hugging Face.
    """
    row = starts.value_rowids()
    lengths = starts.row_lengths()
    source = tf.gather(text, row)
    start, end = starts.flat_values, ends.flat_values
    dense = lambda flat: starts.with_flat_values(flat).to_tensor(default_value=0)  # noqa: E731
    flat = lambda values: tf.RaggedTensor.from_tensor(values, lengths=lengths).flat_values  # noqa: E731

    def pad(table: tf.Tensor) -> tf.Tensor:
        return tf.concat([table, tf.fill([tf.shape(table)[0], 1], _BIG)], axis=1)

    chars, char_starts = tf.strings.unicode_split_with_offsets(text, "UTF-8", errors="replace")
    is_space = tf.ragged.map_flat_values(tf.strings.regex_full_match, chars, WHITESPACE)
    spaces = pad(tf.ragged.boolean_mask(char_starts, is_space).to_tensor(default_value=_BIG))
    words = pad(tf.ragged.boolean_mask(char_starts, ~is_space).to_tensor(default_value=_BIG))
    # The piece's first character the normaliser keeps: past the whitespace (and dropped characters) its
    # span opens with; for a span of whitespace only, the first character after it.
    span = tf.strings.substr(source, start, end - start)
    lead = lambda pattern: tf.strings.length(span) - tf.strings.length(  # noqa: E731
        tf.strings.regex_replace(span, f"^{pattern}+", ""))
    folded = lead(_FOLDED)
    empty = tf.equal(lead(WHITESPACE), tf.strings.length(span))
    visible = flat(tf.gather(words, tf.searchsorted(words, dense(start), side="left"), batch_dims=1))
    kept = tf.where(empty, visible, start + tf.cast(folded, tf.int64))
    # The last whitespace character before it and after the previous piece: where the `▁` points.
    index = tf.searchsorted(spaces, dense(kept), side="left") - 1
    space = flat(tf.where(index >= 0, tf.gather(spaces, tf.maximum(index, 0), batch_dims=1), -1))
    first = tf.concat([[-1], row], 0)[:-1] != row
    found = space >= tf.where(first, tf.zeros_like(end), tf.concat([[0], end], 0)[:-1])
    two = tf.fill(tf.shape(space), tf.constant(2, tf.int64))
    crlf = found & (space > 0) & tf.equal(tf.strings.substr(source, tf.maximum(space - 1, 0), two), "\r\n")
    new_start = tf.where(found, space - tf.cast(crlf, tf.int64), tf.where(first, tf.zeros_like(start), start))
    # The end of the character at a byte offset.
    size = tf.cast(tf.strings.length(text), tf.int64)
    bounds = pad(tf.concat([char_starts, tf.RaggedTensor.from_tensor(size[:, None])], axis=1).to_tensor(_BIG))
    char_end = lambda at: tf.minimum(flat(tf.gather(  # noqa: E731
        bounds, tf.searchsorted(bounds, dense(at), side="right"), batch_dims=1)), tf.gather(size, row))
    new_end = tf.where(lone, tf.where(found | first, char_end(new_start), end),
                       tf.where(empty, char_end(kept), end))
    return starts.with_flat_values(new_start), ends.with_flat_values(tf.maximum(new_end, new_start))
