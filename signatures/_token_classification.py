"""Token classification (`*ForTokenClassification` heads): per-token labels and entities, in graph.

The `text` signature returns the entities Hugging Face's
`pipeline("token-classification", aggregation_strategy="simple" | "first")`
returns, as dense tensors a TF Serving client reads over REST and gRPC: an
entity axis padded to the batch's largest count, plus that count.

    entity_label  string [batch, entities]  the entity group ("PER" for B-PER/I-PER), "" when padding
    entity_score  float  [batch, entities]  mean of its tokens' (words', with "first") scores
    entity_start  int32  [batch, entities]  character offsets into the text as sent:
    entity_end    int32  [batch, entities]  text[start:end] is the entity
    entity_text   string [batch, entities]  that substring
    num_entities  int32  [batch]            how many of the entity axis are real

The `tokens` signatures return per-token `logits`, `label` and `score`.

>>> task = TokenClassification(labels=["O", "B-PER", "I-PER"], aggregation="simple")
>>> out = task.entities(texts, logits, ids, starts, ends)   # ragged per-token inputs
>>> out["entity_label"].shape   # [batch, entities]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import tensorflow as tf

from signatures._packer import keep_first
from signatures._spans import char_offsets, first_and_last, row_starts, segment_starts, substrings
from signatures._tasks import Task

__all__ = ["TokenClassification", "AGGREGATIONS", "SUBWORD_RULES", "ENTITY_OUTPUTS", "entity_group", "hf_tag"]

AGGREGATIONS = ("simple", "first")
# How Hugging Face decides that a token continues a word ("first" only): "length" when the
# tokenizer model has a continuing-subword prefix (WordPiece's ##): the token string's length
# differs from its text's; "space" otherwise (its fallback): no space before or at the token.
SUBWORD_RULES = ("length", "space")
ENTITY_OUTPUTS = ("entity_label", "entity_score", "entity_start", "entity_end", "entity_text", "num_entities")
IGNORED = ("O",)  # the pipeline's default ignore_labels


def hf_tag(label: str) -> tuple[bool, str]:
    """(is a B- label, tag): the pipeline's get_tag, which decides what groups."""
    if label.startswith("B-"):
        return True, label[2:]
    if label.startswith("I-"):
        return False, label[2:]
    return False, label


def entity_group(label: str) -> str:
    """The name an entity is reported under (the pipeline's `entity_group`)."""
    return label.split("-", 1)[-1]


@dataclass
class TokenClassification(Task):
    """Per-token labels and entities aggregated as the Hugging Face pipeline does."""

    labels: list[str] = field(default_factory=list)
    aggregation: str = "simple"
    token_lengths: list[int] | None = None  # characters of each vocabulary token ("first", "length" rule)
    unk_id: int = -1
    subword_rule: str = "length"
    name: ClassVar[str] = "token-classification"
    pipeline_parity: ClassVar[bool] = True
    auto_class: ClassVar[str] = "TFAutoModelForTokenClassification"
    text_outputs: ClassVar[tuple[str, ...]] = ENTITY_OUTPUTS

    def __post_init__(self):
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation strategy must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.subword_rule not in SUBWORD_RULES:
            raise ValueError(f"subword rule must be one of {SUBWORD_RULES}, got {self.subword_rule!r}")
        if self.aggregation == "first" and self.subword_rule == "length" and not self.token_lengths:
            raise ValueError("aggregation 'first' with the 'length' subword rule needs the vocabulary's token lengths")

    @classmethod
    def from_config(cls, config, **options) -> "TokenClassification":
        labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        return cls(labels=labels, **options)

    def outputs(self, model_outputs, attention_mask):
        logits = model_outputs.logits
        probabilities = tf.nn.softmax(logits, axis=-1)
        best = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"logits": logits, "label": tf.gather(tf.constant(self.labels, tf.string), best),
                "score": tf.reduce_max(probabilities, axis=-1)}

    def describe(self):
        return {"task": self.name, "labels": dict(enumerate(self.labels)), "aggregation_strategy": self.aggregation,
                "subword_rule": self.subword_rule if self.aggregation == "first" else None,
                "ignored_labels": list(IGNORED), "outputs": list(ENTITY_OUTPUTS),
                "limits": "texts longer than max_length tokens are truncated (as the pipeline does); "
                          "empty and whitespace-only texts give no entities"}

    def text_signatures(self, module) -> dict:
        tok = module.tokenizer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def text(text):
            ids, starts, ends = tok.tokenize_with_offsets(text)
            encoded = tok.pack([ids])
            content = encoded["segment_ids"] == 0
            keep = tf.reduce_sum(tf.cast(content, tf.int64), axis=1)  # after the tokenizer's truncation
            ids, starts, ends = (keep_first(t, keep) for t in (ids, starts, ends))
            out = module.run(encoded["attention_mask"], encoded.get("token_type_ids"), input_ids=encoded["input_ids"])
            return self.entities(text, tf.ragged.boolean_mask(out["logits"], content), ids, starts, ends)

        return {"text": text.get_concrete_function()}

    def entities(self, text: tf.Tensor, logits: tf.RaggedTensor, ids: tf.RaggedTensor, starts: tf.RaggedTensor,
                 ends: tf.RaggedTensor) -> dict[str, tf.Tensor]:
        """Per-token logits [batch, (tokens), labels] with the tokens' ids and byte offsets -> entity outputs."""
        probabilities = tf.nn.softmax(logits.flat_values, axis=-1)
        label = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        score = tf.reduce_max(probabilities, axis=-1)
        row = tf.cast(ids.value_rowids(), tf.int32)
        opens_row = row_starts(ids)
        byte_start, byte_end = tf.cast(starts.flat_values, tf.int32), tf.cast(ends.flat_values, tf.int32)
        char_start = char_offsets(text, starts).flat_values
        char_end = char_offsets(text, ends).flat_values
        if self.aggregation == "first":  # one unit per word, labelled by its first token
            subword = self._is_subword(text, ids.flat_values, row, char_start, char_end, byte_start)
            word = segment_starts(~subword, opens_row)
            first, last = first_and_last(word, tf.reduce_sum(tf.cast(~subword | opens_row, tf.int32)))
            label, score, row, opens_row = (tf.gather(t, first) for t in (label, score, row, opens_row))
            char_start, byte_start = tf.gather(char_start, first), tf.gather(byte_start, first)
            char_end, byte_end = tf.gather(char_end, last), tf.gather(byte_end, last)
        begins, tags = zip(*(hf_tag(name) for name in self.labels))
        tag_ids = {t: i for i, t in enumerate(dict.fromkeys(tags))}
        tag = tf.gather(tf.constant([tag_ids[t] for t in tags], tf.int32), label)
        previous = tf.concat([[-1], tag[:-1]], axis=0)
        new = (tag != previous) | tf.gather(tf.constant(begins, tf.bool), label)
        group = segment_starts(new, opens_row)
        count = tf.reduce_sum(tf.cast(new | opens_row, tf.int32))
        first, last = first_and_last(group, count)
        group_label = tf.gather(label, first)
        names = [entity_group(name) for name in self.labels]
        keep = ~tf.gather(tf.constant([n in IGNORED for n in names], tf.bool), group_label)
        group_row = tf.boolean_mask(tf.gather(row, first), keep)
        first, last = tf.boolean_mask(first, keep), tf.boolean_mask(last, keep)
        values = {
            "entity_label": tf.gather(tf.constant(names, tf.string), tf.gather(label, first)),
            "entity_score": tf.boolean_mask(tf.math.unsorted_segment_mean(score, group, count), keep),
            "entity_start": tf.gather(char_start, first),
            "entity_end": tf.gather(char_end, last),
            "entity_text": substrings(text, group_row, tf.gather(byte_start, first), tf.gather(byte_end, last)),
        }
        batch = tf.shape(text, out_type=tf.int64)[0]
        result = {}
        for key, value in values.items():
            ragged = tf.RaggedTensor.from_value_rowids(value, tf.cast(group_row, tf.int64), nrows=batch)
            result[key] = ragged.to_tensor(default_value="" if value.dtype == tf.string else 0)
        result["num_entities"] = tf.cast(tf.math.bincount(group_row, minlength=tf.cast(batch, tf.int32),
                                                          maxlength=tf.cast(batch, tf.int32)), tf.int32)
        return result

    def _is_subword(self, text, ids, row, char_start, char_end, byte_start) -> tf.Tensor:
        """The pipeline's `is_subword` for each token (flat), unknown tokens never subwords."""
        if self.subword_rule == "length":
            lengths = tf.gather(tf.constant(self.token_lengths, tf.int32), tf.cast(ids, tf.int32))
            subword = lengths != char_end - char_start
        else:
            source = tf.gather(text, row)
            one = tf.ones_like(byte_start)  # Substr takes a length per position or a scalar for a scalar
            before = tf.strings.substr(source, tf.maximum(byte_start - 1, 0), one, unit="BYTE")
            at = tf.strings.substr(source, byte_start, one, unit="BYTE")
            subword = (char_start > 0) & tf.not_equal(before, " ") & tf.not_equal(at, " ")
        return subword & tf.not_equal(tf.cast(ids, tf.int64), self.unk_id)
