"""The tokenizer interface: every family tokenizes with offsets, packs its template and
truncates as Hugging Face's fast tokenizer does, on the same vocabulary."""
from __future__ import annotations

import pytest
import tensorflow as tf

from export._tokenizer_parity import CORPUS
from tests._references import byte_offsets, hf_tokenizer

TEXTS = [text for _, text in CORPUS if "[" not in text] + ["İstanbul ΟΔΟΣ ΣΟΦΟΣ", "soft\u00adhyphen x\u0301y"]
PAIRS = [("hello world", "the quick brown fox jumps over the lazy dog"),
         ("one two three four five six seven eight nine ten", "a"),
         ("test " * 30, "batch " * 40), ("", "server")]


def _wordpiece(checkpoint, **kwargs):
    from signatures import WordPieceTokenizer

    return WordPieceTokenizer(str(checkpoint / "vocab.txt"), **kwargs)


@pytest.fixture(scope="module", params=["fast", "classic"])
def wordpiece(request, tiny_checkpoint):
    return _wordpiece(tiny_checkpoint, kind=request.param, max_length=64), hf_tokenizer(tiny_checkpoint)


def test_tokenize_with_offsets_gives_hugging_face_ids_and_byte_offsets(wordpiece):
    tok, hf = wordpiece
    ids, starts, ends = tok.tokenize_with_offsets(tf.constant(TEXTS))
    assert ids.dtype == tf.int32 and ids.ragged_rank == 1
    for text, row, row_starts, row_ends in zip(TEXTS, ids.to_list(), starts.to_list(), ends.to_list()):
        want = hf(text, add_special_tokens=False, return_offsets_mapping=True)
        assert row == want["input_ids"], text
        assert list(zip(row_starts, row_ends)) == byte_offsets(text, want["offset_mapping"]), text


def test_tokenize_is_tokenize_with_offsets_without_the_offsets(wordpiece):
    tok, _ = wordpiece
    assert tok.tokenize(tf.constant(TEXTS)).to_list() == tok.tokenize_with_offsets(tf.constant(TEXTS))[0].to_list()


@pytest.mark.parametrize("max_length", [6, 9, 64])
def test_pairs_pack_and_truncate_as_hugging_face_does(wordpiece, max_length):
    tok, hf = wordpiece
    first, second = (tf.constant([p[i] for p in PAIRS]) for i in (0, 1))
    got = tok(first, second) if max_length == tok.max_length else tok.pack(
        [tok.tokenize(first), tok.tokenize(second)], max_length=max_length)
    want = hf([p[0] for p in PAIRS], [p[1] for p in PAIRS], truncation="longest_first", max_length=max_length,
              padding=True, return_tensors="np")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert got[key].dtype == tf.int32
        assert got[key].numpy().tolist() == want[key].tolist(), key


def test_segment_ids_mark_each_segments_tokens_and_nothing_else(tiny_checkpoint):
    tok = _wordpiece(tiny_checkpoint, max_length=64)
    packed = tok.pack([tok.tokenize(tf.constant(["hello world", "a"])), tok.tokenize(tf.constant(["fox", "b"]))])
    ids, segments = packed["input_ids"].numpy(), packed["segment_ids"].numpy()
    assert segments.tolist() == [[-1, 0, 0, -1, 1, -1], [-1, 0, -1, 1, -1, -1]]
    assert set(ids[segments == -1].tolist()) == {tok.cls_id, tok.sep_id, tok.pad_id}
    assert set(ids[segments >= 0].tolist()).isdisjoint({tok.cls_id, tok.sep_id, tok.pad_id})
    assert packed["segment_ids"].dtype == tf.int32


def test_call_is_tokenize_then_pack(tiny_checkpoint):
    tok = _wordpiece(tiny_checkpoint, max_length=16)
    text, pair = tf.constant(["hello world", "the quick brown fox"]), tf.constant(["a b", "server"])
    packed = tok.pack([tok.tokenize(text), tok.tokenize(pair)])
    called = tok(text, pair)
    assert sorted(called) == ["attention_mask", "input_ids", "token_type_ids"]
    for key, value in called.items():
        assert value.numpy().tolist() == packed[key].numpy().tolist()


def test_a_family_without_token_type_ids_does_not_return_them(tiny_checkpoint):
    tok = _wordpiece(tiny_checkpoint, max_length=16, uses_token_type_ids=False)
    assert sorted(tok(tf.constant(["hello"]))) == ["attention_mask", "input_ids"]
    assert "segment_ids" in tok.pack([tok.tokenize(tf.constant(["hello"]))])


def test_the_interface_attributes_name_the_special_tokens(tiny_checkpoint):
    tok = _wordpiece(tiny_checkpoint, max_length=16)
    vocab = tok.get_vocabulary()
    assert (vocab[tok.pad_id], vocab[tok.cls_id], vocab[tok.sep_id], vocab[tok.unk_id], vocab[tok.mask_id]) == (
        "[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")
    assert tok.max_length == 16 and tok.uses_token_type_ids and tok.vocab_size == len(vocab)


def test_the_interface_survives_a_savedmodel_round_trip(tiny_checkpoint, tmp_path):
    tok = _wordpiece(tiny_checkpoint, max_length=16)
    tok.offsets = tf.function(tok.tokenize_with_offsets, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(tok, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    text = tf.constant(["Héllo wörld", ""])
    assert [t.to_list() for t in loaded.offsets(text)] == [t.to_list() for t in tok.tokenize_with_offsets(text)]
