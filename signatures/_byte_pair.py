"""An in-graph byte-level BPE tokenizer (GPT-2's, as RoBERTa and DistilRoBERTa use it).

Hugging Face's four stages, with TensorFlow core ops and tensorflow-text's
`RegexSplitWithOffsets` only (both linked by `tensorflow_model_server`):

1. pre-tokeniser: GPT-2's split regex. RE2 has no lookahead, so its
   `\\s+(?!\\S)` (a run of spaces gives its last space to the next word) is
   done in two passes: split off whitespace runs, move each run's last
   character onto the word after it (a space) or into a token of its own
   (any other whitespace), then split the words with the rest of the regex.
2. bytes: every UTF-8 byte of a word starts as the id of its byte-to-unicode
   symbol (a 256-entry table).
3. merges by rank, on ids: a pair's key is `left * vocab_size + right`; one
   static table gives its rank and the merged id. Each round merges, in
   every word at once, the non-overlapping left-to-right occurrences of the
   word's lowest-ranked pair (GPT-2's `bpe()`), until no pair merges. The
   only state is the immutable tables: nothing grows with traffic.
4. template: `<s> a </s></s> b </s>` (`SegmentPacker`).

Offsets are byte offsets into the input, a leading space excluded
(Hugging Face's `trim_offsets`).

>>> tok = BytePairTokenizer("vocab.json", "merges.txt", max_length=128)
>>> tok(tf.constant(["Hello world!"]))["input_ids"]
<tf.Tensor: shape=(1, 5), dtype=int32, numpy=array([[    0, 31414,   232,   328,     2]], dtype=int32)>
"""
from __future__ import annotations

import json

import tensorflow as tf
import tensorflow_text as tf_text

from signatures._packer import SegmentPacker
from signatures._tokenizer import WHITESPACE, Tokenizer, special_ids

__all__ = ["BytePairTokenizer", "bytes_to_unicode", "read_merges"]

_WS = WHITESPACE
# GPT-2's pattern without its `\s+(?!\S)` alternative (done by `_chunks`).
_WORD = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\t\n\x{0B}\f\r\x{85}\p{Z}\p{L}\p{N}]+|"
         + _WS + "+")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return chars


def read_merges(path: str) -> list[tuple[str, str]]:
    """A GPT-2 `merges.txt`: one `left right` pair a line, after an optional `#version` line."""
    merges = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{path}:{number}: a merge is two symbols separated by one space, got {line!r}")
            merges.append((parts[0], parts[1]))
    return merges


def _read_vocab_and_merges(vocab_file: str, merges_file: str | None,
                           merges: bool = True) -> tuple[dict[str, int], list[tuple[str, str]]]:
    with open(vocab_file, encoding="utf-8") as f:
        data = json.load(f)
    if merges_file is not None or not isinstance(data.get("model"), dict):  # "model" is a word in vocab.json
        if merges_file is None and merges:
            raise ValueError(f"{vocab_file}: a BPE vocabulary needs its merges.txt")
        return data, read_merges(merges_file) if merges else []
    model = data["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"{vocab_file}: the tokenizer's model is {model.get('type')!r}, not BPE")
    pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    return model.get("vocab", {}), pairs


class BytePairTokenizer(Tokenizer):
    """Strings -> `input_ids`, `attention_mask` through GPT-2 byte-level BPE, in graph.

    Args:
        vocab_file: `vocab.json` (token -> id), or a `tokenizer.json` whose BPE
            model holds the vocabulary and the merges; carried as a SavedModel asset.
        merges_file: `merges.txt`, ranks in line order (with `vocab.json`); carried as an asset.
        max_length: total length including special tokens.
        add_prefix_space: add a space before the text, so its first word
            tokenizes like any other (`add_prefix_space` in Hugging Face).
        template: "roberta" (`<s> a </s></s> b </s>`) or "bert".
        uses_token_type_ids: whether the model takes `token_type_ids`.
        cls_token, sep_token, unk_token, pad_token, mask_token: special tokens.
    """

    def __init__(self, vocab_file: str, merges_file: str | None = None, *, max_length: int = 512,
                 add_prefix_space: bool = False, template: str = "roberta", uses_token_type_ids: bool = False,
                 cls_token: str = "<s>", sep_token: str = "</s>", unk_token: str = "<unk>",
                 pad_token: str = "<pad>", mask_token: str = "<mask>", name: str | None = None):
        vocab, merges = _read_vocab_and_merges(vocab_file, merges_file)
        ids = special_ids(vocab, vocab_file, cls=cls_token, sep=sep_token, unk=unk_token, pad=pad_token,
                           mask=mask_token)
        packer = SegmentPacker.from_template(template, cls_id=ids["cls"], sep_id=ids["sep"], pad_id=ids["pad"])
        size = max(vocab.values()) + 1
        super().__init__(max_length=max_length, uses_token_type_ids=uses_token_type_ids, packer=packer,
                         special_ids=ids, vocab_size=size, name=name)
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        self.merges_file = None if merges_file is None else tf.saved_model.Asset(merges_file)
        self.add_prefix_space = add_prefix_space
        self.template = template
        chars = bytes_to_unicode()
        missing = [chars[b] for b in range(256) if chars[b] not in vocab]
        if missing:
            raise ValueError(f"{vocab_file} is not a byte-level BPE vocabulary: it lacks the byte symbols "
                             f"{missing[:5]}{'...' if len(missing) > 5 else ''}")
        self._byte_ids = tf.constant([vocab[chars[b]] for b in range(256)], tf.int64)
        keys, values = [], []
        for rank, (left, right) in enumerate(merges):
            merged = vocab.get(left + right)
            if left not in vocab or right not in vocab or merged is None:
                raise ValueError(f"{merges_file}: merge {rank + 1} ({left!r} {right!r}) uses or makes a symbol that "
                                 f"is not in {vocab_file}; the two files do not belong together")
            keys.append(vocab[left] * size + vocab[right])
            values.append(rank * size + merged)
        if not keys:
            raise ValueError(f"{merges_file} has no merges; a byte-level BPE vocabulary needs its merges.txt")
        self._no_merge = len(merges) * size + size  # above every rank
        space = chars[ord(" ")]
        tokens = {i: t for t, i in vocab.items()}
        self._leading_spaces = tf.constant(
            [len(tokens.get(i, "")) - len(tokens.get(i, "").lstrip(space)) for i in range(size)], tf.int64)
        self._trailing_spaces = tf.constant(
            [len(tokens.get(i, "")) - len(tokens.get(i, "").rstrip(space)) for i in range(size)], tf.int64)
        self._merges = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.int64), tf.constant(values, tf.int64)),
            default_value=self._no_merge)

    def get_vocabulary(self) -> list[str]:
        vocab, _ = _read_vocab_and_merges(self.vocab_file.asset_path.numpy().decode(), None, merges=False)
        tokens = [f"<{i}>" for i in range(self.vocab_size)]
        for token, i in vocab.items():
            tokens[i] = token
        return tokens

    def tokenize_with_offsets(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        return tuple(t.merge_dims(1, 2) for t in self._tokenize_words(text))

    def tokenize_with_words(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, ...]:
        """The words are the pre-tokenizer's (GPT-2's split): `' world'` and `'!'` are two, so a word
        start is not something the vocabulary can tell."""
        ids, starts, ends = self._tokenize_words(text)
        flat = ids.merge_dims(1, 2)
        tokens = tf.shape(flat.flat_values, out_type=tf.int64)[0]
        firsts = ids.values.row_starts()  # every word has a token: each is a word's first
        opens = tf.scatter_nd(firsts[:, None], tf.ones_like(firsts, tf.int32), [tokens]) > 0
        return flat, starts.merge_dims(1, 2), ends.merge_dims(1, 2), flat.with_flat_values(opens)

    def _tokenize_words(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """[batch] strings -> ids, starts, ends as [batch, (words), (tokens)]."""
        text = tf.convert_to_tensor(text)
        shift = tf.zeros_like(text, tf.int64)
        if self.add_prefix_space:  # Hugging Face adds it only where there is none
            added = ~tf.strings.regex_full_match(text, "(?s) .*")
            text = tf.where(added, " " + text, text)
            shift = tf.cast(added, tf.int64)
        words, word_starts = self._pre_tokenize(text)
        ids, starts, ends = self._merge(words.flat_values, word_starts.flat_values)
        # Offsets into the text the caller sent: an added prefix space maps to its first character.
        token_shift = tf.gather(tf.gather(shift, words.value_rowids()), starts.value_rowids())
        start_values = tf.maximum(starts.flat_values - token_shift, 0)
        starts = starts.with_flat_values(start_values)
        ends = ends.with_flat_values(tf.maximum(ends.flat_values - token_shift, start_values))
        return words.with_flat_values(ids), words.with_flat_values(starts), words.with_flat_values(ends)

    def _pre_tokenize(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
        """[batch] strings -> [batch, (words)] words and their byte starts, GPT-2's split."""
        pieces, starts, ends = tf_text.regex_split_with_offsets(text, _WS + "+", _WS + "+")
        row = pieces.value_rowids()
        flat, starts, ends = pieces.flat_values, starts.flat_values, ends.flat_values
        is_ws = tf.strings.regex_full_match(flat, _WS + "+")
        has_next = tf.concat([row[1:] == row[:-1], tf.zeros([tf.minimum(tf.size(row), 1)], tf.bool)], 0)
        last = tf.strings.substr(flat, -1, 1, unit="UTF8_CHAR")
        last_len = tf.cast(tf.strings.length(last), tf.int64)
        gives_space = is_ws & has_next & tf.equal(last, " ")  # its last space starts the next word
        splits_last = is_ws & has_next & ~tf.equal(last, " ")  # its last character is a token of its own
        took_space = tf.concat([tf.zeros([tf.minimum(tf.size(row), 1)], tf.bool), gives_space[:-1]], 0)
        a_start = starts - tf.cast(took_space, tf.int64)
        a_end = ends - tf.where(gives_space, tf.ones_like(ends), tf.where(splits_last, last_len, 0))
        b_start = ends - last_len
        b_end = tf.where(splits_last, ends, b_start)
        chunk_start = tf.reshape(tf.stack([a_start, b_start], 1), [-1])
        chunk_end = tf.reshape(tf.stack([a_end, b_end], 1), [-1])
        chunk_row = tf.repeat(row, 2)
        keep = chunk_end > chunk_start
        chunk_start, chunk_end, chunk_row = (tf.boolean_mask(t, keep) for t in (chunk_start, chunk_end, chunk_row))
        chunks = tf.strings.substr(tf.gather(text, chunk_row), chunk_start, chunk_end - chunk_start)
        words, word_starts, _ = tf_text.regex_split_with_offsets(chunks, _WORD, _WORD)
        word_starts += tf.expand_dims(chunk_start, 1)
        nrows = tf.shape(text, out_type=tf.int64)[0]
        by_row = lambda t: tf.RaggedTensor.from_value_rowids(t, chunk_row, nrows=nrows).merge_dims(1, 2)  # noqa: E731
        return by_row(words), by_row(word_starts)

    def _merge(self, words: tf.Tensor, word_starts: tf.Tensor) -> tuple[tf.RaggedTensor, ...]:
        """[words] strings -> [words, (tokens)] ids, start and end byte offsets (from `word_starts`)."""
        size = self.vocab_size
        split = tf.strings.bytes_split(words)
        codes = tf.cast(tf.reshape(tf.io.decode_raw(split.flat_values, tf.uint8), [-1]), tf.int32)
        word = split.value_rowids()
        n_words = tf.shape(words, out_type=tf.int64)[0]
        n_merges = self._no_merge // size - 1

        def merge_round(ids, lengths, word, _):
            value = self._merges.lookup(ids[:-1] * size + ids[1:])
            rank = tf.where(word[:-1] == word[1:], value // size, n_merges + 1)
            lowest = tf.math.unsorted_segment_min(rank, word[:-1], n_words)
            best = (rank == tf.gather(lowest, word[:-1])) & (rank <= n_merges)
            # A run of the same pair (`a a a`) merges left to right, every other one.
            run_starts = best & ~tf.concat([[False], best], 0)[:-1]
            run = tf.maximum(tf.cumsum(tf.cast(run_starts, tf.int64)) - 1, 0)
            first = tf.gather(tf.concat([tf.where(run_starts)[:, 0], [0]], 0), run)
            chosen = best & ((tf.range(tf.size(best, out_type=tf.int64)) - first) % 2 == 0)
            chosen_here = tf.concat([chosen, [False]], 0)
            ids = tf.where(chosen_here, tf.concat([value % size, [0]], 0), ids)
            lengths = lengths + tf.where(chosen_here, tf.concat([lengths[1:], [0]], 0), 0)
            keep = ~tf.concat([[False], chosen], 0)
            return (tf.boolean_mask(ids, keep), tf.boolean_mask(lengths, keep), tf.boolean_mask(word, keep),
                    tf.reduce_any(best))

        ids = tf.gather(self._byte_ids, codes)
        lengths = tf.ones_like(ids)
        ids, lengths, word, _ = tf.while_loop(
            lambda *state: state[-1], merge_round, (ids, lengths, word, tf.size(ids) > 1),
            shape_invariants=(tf.TensorShape([None]),) * 3 + (tf.TensorShape([]),))
        # Byte positions in the concatenated words; a token that splits a character covers all
        # of it, as Hugging Face's alignments do.
        ends = tf.cumsum(lengths)
        starts = ends - lengths
        lead = tf.where(tf.bitwise.bitwise_and(codes, 0xC0) != 0x80)[:, 0]
        char_start = tf.gather(lead, tf.searchsorted(lead, starts, side="right") - 1)
        after = tf.searchsorted(lead, ends - 1, side="right")
        char_end = tf.gather(tf.concat([lead, [tf.size(codes, out_type=tf.int64)]], 0), after)
        # Hugging Face's trim_offsets: leading / trailing spaces are not part of a token's span.
        lead_spaces = tf.gather(self._leading_spaces, ids)
        trail_spaces = tf.gather(self._trailing_spaces, ids)
        char_start = tf.minimum(char_start + lead_spaces, char_end)
        char_end = tf.maximum(char_end - trail_spaces, char_start)
        base = tf.gather(word_starts - split.row_starts(), word)
        rows = lambda t: tf.RaggedTensor.from_value_rowids(t, word, nrows=n_words)  # noqa: E731
        return rows(tf.cast(ids, tf.int32)), rows(char_start + base), rows(char_end + base)
