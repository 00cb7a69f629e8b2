"""Token classification and question answering post-processing, in graph, on synthetic tensors.

Each function is checked against the code Hugging Face's pipelines run
(transformers' own `aggregate`, `select_starts_ends`, `tokenizers`' overflow
windows), not against a re-implementation of it.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from signatures import QuestionAnswering, TokenClassification
from signatures._question_answering import span_candidates, windows
from signatures._spans import char_offsets

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "MISC"]


def test_byte_offsets_convert_to_character_offsets():
    text = "é 😍 b中"
    byte_offsets = [len(text[:i].encode()) for i in range(len(text) + 1)]
    got = char_offsets(tf.constant([text, ""]), tf.ragged.constant([byte_offsets, [0]], tf.int64))
    assert got.to_list() == [list(range(len(text) + 1)), [0]]


def _hf_pipeline_aggregator(labels):
    """transformers' TokenClassificationPipeline with only what `aggregate` uses."""
    from types import SimpleNamespace

    from transformers.pipelines.token_classification import TokenClassificationPipeline

    pipe = object.__new__(TokenClassificationPipeline)
    pipe.model = SimpleNamespace(config=SimpleNamespace(id2label=dict(enumerate(labels))))
    pipe.tokenizer = SimpleNamespace(convert_tokens_to_string=lambda tokens: " ".join(tokens))
    return pipe


def _synthetic_tokens(rng, rows: int):
    """Texts of words split into 1-3 pieces, with byte offsets, subword flags and logits."""
    texts, spans, subwords = [], [], []
    for r in range(rows):
        words = ["".join(rng.choice(list("abcdé中")) for _ in range(rng.integers(1, 7)))
                 for _ in range(rng.integers(0, 9))]
        text = " ".join(words)
        row_spans, row_sub, at = [], [], 0
        for word in words:
            cuts = sorted(set(rng.integers(1, len(word) + 1, size=rng.integers(0, 3)).tolist()) | {len(word)})
            begin = 0
            for cut in cuts:
                row_spans.append((at + begin, at + cut))
                row_sub.append(begin > 0)
                begin = cut
            at += len(word) + 1
        texts.append(text)
        spans.append(row_spans)
        subwords.append(row_sub)
    return texts, spans, subwords


@pytest.mark.parametrize("strategy", ["simple", "first"])
def test_entities_equal_the_pipelines_aggregation(strategy):
    from transformers.pipelines.token_classification import AggregationStrategy

    rng = np.random.default_rng(1)
    texts, spans, subwords = _synthetic_tokens(rng, 24)
    counts = [len(s) for s in spans]
    logits = (rng.normal(size=(sum(counts), len(LABELS))) * 2).astype(np.float32)
    # Token strings whose length tells subwords apart, as the pipeline's "length" rule reads them.
    ids = [[i for i, _ in enumerate(row)] for row in spans]
    lengths = {}
    for row, row_spans, row_sub in zip(texts, spans, subwords):
        for (s, e), sub in zip(row_spans, row_sub):
            lengths[len(lengths)] = (e - s) + (2 if sub else 0)
    flat_ids = list(range(len(lengths)))
    ids = tf.RaggedTensor.from_row_lengths(tf.constant(flat_ids, tf.int64), counts)
    byte = lambda text, i: len(text[:i].encode())  # noqa: E731
    starts = tf.ragged.constant([[byte(t, s) for s, _ in row] for t, row in zip(texts, spans)], tf.int64,
                                row_splits_dtype=tf.int64)
    ends = tf.ragged.constant([[byte(t, e) for _, e in row] for t, row in zip(texts, spans)], tf.int64,
                              row_splits_dtype=tf.int64)
    task = TokenClassification(labels=LABELS, aggregation=strategy, token_lengths=[lengths[i] for i in flat_ids])
    got = task.entities(tf.constant(texts), tf.RaggedTensor.from_row_lengths(logits, counts), ids, starts, ends)
    got = {k: v.numpy() for k, v in got.items()}

    pipe = _hf_pipeline_aggregator(LABELS)
    probabilities = tf.nn.softmax(logits).numpy()
    offset = 0
    for r, (text, row_spans, row_sub) in enumerate(zip(texts, spans, subwords)):
        pre = [{"word": "w", "scores": probabilities[offset + i], "start": s, "end": e, "index": i + 1,
                "is_subword": sub} for i, ((s, e), sub) in enumerate(zip(row_spans, row_sub))]
        offset += len(row_spans)
        want = [e for e in pipe.aggregate(pre, AggregationStrategy[strategy.upper()]) if e["entity_group"] != "O"]
        n = got["num_entities"][r]
        assert n == len(want), f"row {r} {text!r}"
        assert [x.decode() for x in got["entity_label"][r, :n]] == [e["entity_group"] for e in want]
        assert got["entity_start"][r, :n].tolist() == [e["start"] for e in want]
        assert got["entity_end"][r, :n].tolist() == [e["end"] for e in want]
        np.testing.assert_allclose(got["entity_score"][r, :n], [e["score"] for e in want], atol=1e-6)
        assert [x.decode() for x in got["entity_text"][r, :n]] == [text[e["start"]:e["end"]] for e in want]
        assert (got["entity_label"][r, n:] == b"").all()


def test_text_without_tokens_has_no_entities():
    task = TokenClassification(labels=LABELS)
    empty = tf.ragged.constant([[], []], tf.int64, row_splits_dtype=tf.int64)
    logits = tf.RaggedTensor.from_row_lengths(tf.zeros([0, len(LABELS)]), tf.constant([0, 0], tf.int64))
    got = task.entities(tf.constant(["", "   "]), logits, empty, empty, empty)
    assert got["num_entities"].numpy().tolist() == [0, 0]
    assert got["entity_label"].shape == (2, 0)


def _hf_windows(context_tokens: int, question_tokens: int, max_length: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of each window `tokenizers` cuts for a question/context pair."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[CLS]": 0, "[SEP]": 1, "[PAD]": 2, "q": 3, **{f"c{i}": 4 + i for i in range(context_tokens)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[PAD]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", 0), ("[SEP]", 1)])
    tok.enable_truncation(max_length, stride=stride, strategy="only_second")
    enc = tok.encode(" ".join(["q"] * question_tokens), " ".join(f"c{i}" for i in range(context_tokens)))
    out = []
    for e in [enc] + enc.overflowing:
        context = [vocab_id - 4 for vocab_id, seq in zip(e.ids, e.sequence_ids) if seq == 1]
        out.append((context[0] if context else 0, len(context)))
    return out


@pytest.mark.parametrize("context_tokens, question_tokens, max_length, stride",
                         [(0, 3, 16, 4), (5, 3, 16, 4), (10, 3, 16, 4), (11, 3, 16, 4), (40, 3, 16, 4),
                          (41, 2, 16, 0), (100, 7, 32, 8), (33, 1, 16, 11)])
def test_windows_are_the_tokenizers_overflow_windows(context_tokens, question_tokens, max_length, stride):
    example, start, length = windows(tf.constant([context_tokens]), tf.constant([max_length - 3 - question_tokens]),
                                     stride)
    assert example.numpy().tolist() == [0] * len(start)
    assert list(zip(start.numpy().tolist(), length.numpy().tolist())) == _hf_windows(
        context_tokens, question_tokens, max_length, stride)


def test_windows_keep_examples_in_order():
    example, start, _ = windows(tf.constant([3, 20, 0]), tf.constant([5, 5, 5]), 2)
    assert example.numpy().tolist() == [0, 1, 1, 1, 1, 1, 1, 2]
    assert start.numpy().tolist() == [0, 0, 3, 6, 9, 12, 15, 0]


@pytest.mark.parametrize("seq, max_answer_len", [(20, 5), (11, 15)])
def test_span_candidates_are_the_pipelines_best_spans(seq, max_answer_len):
    from transformers.pipelines.question_answering import select_starts_ends

    rng = np.random.default_rng(3)
    context = list(range(7, seq - 1))  # [CLS] question [SEP] context [SEP]
    start, end = (rng.normal(size=(1, seq)).astype(np.float32) * 3 for _ in range(2))
    p_mask = np.ones((1, seq), np.int64)
    p_mask[0, context] = 0
    p_mask[0, 0] = 0
    want_s, want_e, want_score, _ = select_starts_ends(start, end, p_mask, np.ones((1, seq), np.int64),
                                                       top_k=12, max_answer_len=max_answer_len)
    score, s, e = span_candidates(tf.ragged.constant([start[0, context]]), tf.ragged.constant([end[0, context]]),
                                  tf.constant(start[:, 0]), tf.constant(end[:, 0]), max_answer_len)
    real, want = score.numpy()[0] > 0, want_score > 0  # zero-score fillers come in no defined order
    assert (s.numpy()[0][real] + context[0]).tolist() == want_s[want].tolist()
    assert (e.numpy()[0][real] + context[0]).tolist() == want_e[want].tolist()
    np.testing.assert_allclose(score.numpy()[0][real], want_score[want], rtol=1e-5)


def test_question_budget_leaves_room_for_the_stride():
    assert QuestionAnswering(doc_stride=128).question_budget(384, 3) == 252
    with pytest.raises(ValueError, match="smaller doc stride"):
        QuestionAnswering(doc_stride=62).question_budget(64, 3)
