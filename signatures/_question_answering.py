"""Extractive question answering (`*ForQuestionAnswering` heads): the best answer span, in graph.

The `text` signature takes `question` and `context` [batch] strings and
returns what Hugging Face's `pipeline("question-answering")` returns (top_k=1,
align_to_words, no impossible answer):

    answer  string [batch]  context[start:end]
    start   int32  [batch]  character offsets into the context as sent
    end     int32  [batch]
    score   float  [batch]  p(start) * p(end), softmax over the context tokens and [CLS];
                            spans of the same (case-insensitive) text summed, as the pipeline does

Contexts longer than the model's length are cut into overlapping windows as
the pipeline does (`doc_stride` tokens shared by consecutive windows); every
window runs through the model in one batch and the best answer over all
windows wins. An empty or whitespace-only question or context gives the empty
answer: "" at 0:0 with score 0.

The `tokens` signatures return `start_logits` and `end_logits`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import tensorflow as tf

from signatures._packer import keep_first
from signatures._spans import char_offsets, first_and_last, row_starts, segment_starts, substrings
from signatures._tasks import Task

__all__ = ["QuestionAnswering", "ANSWER_OUTPUTS", "windows", "span_candidates"]

ANSWER_OUTPUTS = ("answer", "start", "end", "score")
CANDIDATES = 12  # the pipeline looks at top_k * 2 + 10 spans per window before aligning them to words


def windows(context_lengths: tf.Tensor, room: tf.Tensor, stride: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Overlapping windows over each context, as `tokenizers` cuts overflowing tokens.

    `room[i]` context tokens fit next to question i. Window k starts at
    k * (room - stride); the last is the first that reaches the end (one
    window when the context fits, even an empty one).
    Returns flat (example, start, length) per window, examples in order.
    """
    lengths = tf.cast(context_lengths, tf.int32)
    room = tf.cast(room, tf.int32)
    step = room - stride
    over = tf.maximum(lengths - room, 0)
    count = 1 + (over + step - 1) // step
    example = tf.repeat(tf.range(tf.size(count)), count)
    k = tf.ragged.range(count).flat_values
    start = k * tf.gather(step, example)
    length = tf.minimum(start + tf.gather(room, example), tf.gather(lengths, example)) - start
    return example, start, length


def span_candidates(start_logits: tf.RaggedTensor, end_logits: tf.RaggedTensor, cls_start: tf.Tensor,
                    cls_end: tf.Tensor, max_answer_length: int, k: int = CANDIDATES):
    """The k best (start, end) spans of each window over its context tokens.

    `*_logits` are the context tokens' logits [windows, (tokens)], `cls_*` the
    [CLS] logits: the softmax runs over the context and [CLS] (the pipeline's
    p_mask), then [CLS] leaves the race. A span has end >= start and at most
    max_answer_length tokens. Returns (score, start, end) [windows, k]; score
    0 marks no span.
    """
    def probabilities(logits, cls):
        dense = logits.to_tensor(default_value=-1e30)
        top = tf.maximum(tf.reduce_max(dense, axis=1), cls)
        exp = tf.exp(dense - top[:, None])
        return exp / (tf.reduce_sum(exp, axis=1) + tf.exp(cls - top))[:, None]

    p_start = probabilities(start_logits, cls_start)
    p_end = probabilities(end_logits, cls_end)
    n = tf.shape(p_start)[1]
    position = tf.range(n)
    width = position[None, :] - position[:, None]  # end - start; band_part refuses a band wider than the matrix
    band = (width >= 0) & (width < max_answer_length)
    spans = tf.where(band[None], p_start[:, :, None] * p_end[:, None, :], 0.0)
    flat = tf.reshape(spans, [tf.shape(spans)[0], n * n])
    score, index = tf.math.top_k(flat, k=tf.minimum(k, n * n))
    return score, index // n, index % n


@dataclass
class QuestionAnswering(Task):
    """Best answer span over overlapping windows, as the Hugging Face pipeline scores it."""

    doc_stride: int = 128
    max_answer_length: int = 15
    word_starts: list[bool] | None = None  # per vocabulary id: does the token open a word (not `##x`)?
    name: ClassVar[str] = "question-answering"
    pipeline_parity: ClassVar[bool] = True
    auto_class: ClassVar[str] = "TFAutoModelForQuestionAnswering"
    text_outputs: ClassVar[tuple[str, ...]] = ANSWER_OUTPUTS
    limits: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.doc_stride < 0:
            raise ValueError(f"doc stride must be >= 0, got {self.doc_stride}")
        if self.max_answer_length < 1:
            raise ValueError(f"max answer length must be >= 1, got {self.max_answer_length}")

    def outputs(self, model_outputs, attention_mask):
        return {"start_logits": model_outputs.start_logits, "end_logits": model_outputs.end_logits}

    def describe(self):
        return {"task": self.name, "doc_stride": self.doc_stride, "max_answer_length": self.max_answer_length,
                "outputs": list(ANSWER_OUTPUTS), **self.limits}

    def question_budget(self, max_length: int, specials: int) -> int:
        """Question tokens kept, so that every window has room for more than doc_stride context tokens."""
        budget = max_length - specials - self.doc_stride - 1
        if budget < 1:
            raise ValueError(f"doc stride {self.doc_stride} leaves no room for a question within max length "
                             f"{max_length} ({specials} special tokens); use a smaller doc stride")
        return budget

    def text_signatures(self, module) -> dict:
        tok = module.tokenizer
        empty = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([1], tf.int64))
        specials = int(tok.pack([empty, empty])["input_ids"].shape[1])
        max_length = int(tok.max_length)
        question_budget = self.question_budget(max_length, specials)
        self.limits = {"max_length": max_length, "question_tokens": question_budget,
                       "context_tokens_per_window": f"{max_length - specials} minus the question's",
                       "limits": "questions longer than question_tokens are truncated; every window of a context "
                                 "runs through the model in the same batch, so a context of T tokens costs about "
                                 "T / (window - doc_stride) windows; empty or whitespace-only questions and "
                                 "contexts give the empty answer"}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                                      tf.TensorSpec([None], tf.string, name="context")])
        def text(question, context):
            tf.debugging.assert_equal(tf.size(question), tf.size(context), message=(
                "question and context must have the same batch size (one context per question)"))
            q_ids, _, _ = tok.tokenize_with_offsets(question)
            q_ids = keep_first(q_ids, tf.minimum(q_ids.row_lengths(), question_budget))
            c_ids, c_starts, c_ends, c_opens = tok.tokenize_with_words(context)
            room = max_length - specials - q_ids.row_lengths()
            example, start, length = windows(c_ids.row_lengths(), room, self.doc_stride)
            window_ids = _window_tokens(c_ids, example, start, length)
            encoded = tok.pack([tf.gather(q_ids, example), window_ids], max_length)
            out = module.run(encoded["attention_mask"], encoded.get("token_type_ids"), input_ids=encoded["input_ids"])
            in_context = encoded["segment_ids"] == 1
            score, s, e = span_candidates(tf.ragged.boolean_mask(out["start_logits"], in_context),
                                          tf.ragged.boolean_mask(out["end_logits"], in_context),
                                          out["start_logits"][:, 0], out["end_logits"][:, 0], self.max_answer_length)
            answerable = tf.gather((q_ids.row_lengths() > 0) & (c_ids.row_lengths() > 0), example)
            score = tf.where(answerable[:, None], score, 0.0)
            return self.best_answers(context, c_ids, c_starts, c_ends, example, start, length, score, s, e,
                                     c_opens)

        return {"text": text.get_concrete_function()}

    def best_answers(self, context, c_ids, c_starts, c_ends, example, start, length, score, s, e,
                     c_opens=None) -> dict:
        """Window candidates -> one answer per context: word-aligned spans, equal texts summed, best wins."""
        batch = tf.shape(context)[0]
        k = tf.shape(score)[1]
        window = tf.repeat(tf.range(tf.shape(score)[0]), k)
        score, s, e = tf.reshape(score, [-1]), tf.reshape(s, [-1]), tf.reshape(e, [-1])
        real = score > 0
        window, score, s, e = (tf.boolean_mask(t, real) for t in (window, score, s, e))
        row = tf.gather(example, window)
        offset = tf.gather(start, window)
        base = tf.gather(tf.cast(c_ids.row_starts(), tf.int32), row)  # flat index of the context's first token
        first_word, last_word = self._word_bounds(c_ids, c_opens)
        # Words cut by a window's edge end at the edge (the pipeline's window encoding only has its own tokens).
        low = base + offset
        high = low + tf.gather(length, window) - 1
        first = tf.maximum(tf.gather(first_word, base + offset + s), low)
        last = tf.minimum(tf.gather(last_word, base + offset + e), high)
        byte_start = tf.gather(c_starts.flat_values, first)
        byte_end = tf.gather(c_ends.flat_values, last)
        text = substrings(context, row, byte_start, byte_end)
        chars_start = char_offsets(context, c_starts).flat_values
        chars_end = char_offsets(context, c_ends).flat_values
        key = tf.strings.join([tf.strings.as_string(row), tf.strings.lower(text, encoding="utf-8")], "\x00")
        unique, group = tf.unique(key)
        groups = tf.size(unique)
        total = tf.math.unsorted_segment_sum(score, group, groups)
        order = tf.range(tf.size(group))
        first_seen = tf.math.unsorted_segment_min(order, group, groups)
        group_row = tf.gather(row, first_seen)
        best_total = tf.math.unsorted_segment_max(total, group_row, batch)
        # Ties go to the span seen first, as the pipeline's stable sort does.
        winner = tf.math.unsorted_segment_min(
            tf.where(total >= tf.gather(best_total, group_row), tf.range(groups), groups), group_row, batch)
        winner = tf.minimum(winner, groups)  # a context without candidates has no winner: `groups`
        has = winner < groups
        pick = tf.gather(tf.concat([first_seen, [0]], 0), winner)

        def chosen(values, default):
            padded = tf.concat([values, [default]], 0)
            return tf.gather(padded, tf.where(has, pick, tf.size(values)))

        return {
            "answer": chosen(text, ""),
            "start": chosen(tf.gather(chars_start, first), 0),
            "end": chosen(tf.gather(chars_end, last), 0),
            "score": tf.gather(tf.concat([total, [0.0]], 0), winner),
        }

    def _word_bounds(self, ids: tf.RaggedTensor, opens: tf.RaggedTensor | None) -> tuple[tf.Tensor, tf.Tensor]:
        """Flat index of the first and last token of each token's word (words never cross rows).

        Words are the tokenizer's pre-tokenizer words (`opens`) when it gives them, else the vocabulary's.
        """
        if opens is None:
            opens = tf.gather(tf.constant(self.word_starts, tf.bool), tf.cast(ids.flat_values, tf.int32))
        else:
            opens = opens.flat_values
        word = segment_starts(opens, row_starts(ids))
        first, last = first_and_last(word, tf.reduce_sum(tf.cast(opens | row_starts(ids), tf.int32)))
        return tf.gather(first, word), tf.gather(last, word)


def _window_tokens(ids: tf.RaggedTensor, example: tf.Tensor, start: tf.Tensor, length: tf.Tensor) -> tf.RaggedTensor:
    """The context tokens of each window: ids[example][start:start + length], [windows, (tokens)]."""
    base = tf.gather(tf.cast(ids.row_starts(), tf.int32), example) + start
    positions = tf.ragged.range(base, base + length)
    return tf.gather(ids.flat_values, positions)
