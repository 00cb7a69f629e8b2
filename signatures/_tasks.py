"""Tasks: which Transformers head to load and what the signatures return.

A task names the TF Auto class whose outputs it post-processes and the output
tensors it adds. Adding one (token classification, say) is a subclass and a
`TASKS` entry; the signatures and the export use it through this interface.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import tensorflow as tf

from signatures._postprocess import POOLINGS, classify, l2_normalize, pool

__all__ = ["Task", "FeatureExtraction", "TextClassification", "TokenClassification", "QuestionAnswering", "TASKS"]


class Task:
    """Base class: subclasses set `name`, `auto_class` and implement `outputs`."""

    name: ClassVar[str]
    auto_class: ClassVar[str]  # transformers class that loads the model for this task
    takes_pairs: ClassVar[bool] = False  # also export a `text_pair` signature
    text_outputs: ClassVar[tuple[str, ...] | None] = None  # outputs of the `text` signature (None: all)
    pipeline_parity: ClassVar[bool] = False  # the export checks `text` against transformers.pipeline instead

    def outputs(self, model_outputs, attention_mask: tf.Tensor) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def describe(self) -> dict:
        """What the model card says about the task."""
        return {"task": self.name}

    def text_signatures(self, module) -> dict:
        """Strings-in signatures that replace the module's own (`text`), for tasks that post-process
        with the tokens' offsets; {} keeps the module's."""
        return {}


@dataclass
class FeatureExtraction(Task):
    """Sentence embeddings: pooled (mean by default) and L2-normalised, as sentence-transformers computes them."""

    pooling: str = "mean"
    normalize: bool = True
    name: ClassVar[str] = "feature-extraction"
    auto_class: ClassVar[str] = "TFAutoModel"
    text_outputs: ClassVar[tuple[str, ...]] = ("embedding",)

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")

    def outputs(self, model_outputs, attention_mask):
        hidden = model_outputs.last_hidden_state
        embedding = pool(hidden, attention_mask, self.pooling)
        if self.normalize:
            embedding = l2_normalize(embedding)
        return {"last_hidden_state": hidden, "embedding": embedding}

    def describe(self):
        return {"task": self.name, "pooling": self.pooling, "normalize": self.normalize}


@dataclass
class TextClassification(Task):
    """`*ForSequenceClassification` heads: logits, probabilities, best label and its score."""

    labels: list[str] = field(default_factory=list)
    multi_label: bool = False
    name: ClassVar[str] = "text-classification"
    auto_class: ClassVar[str] = "TFAutoModelForSequenceClassification"
    takes_pairs: ClassVar[bool] = True

    @classmethod
    def from_config(cls, config) -> "TextClassification":
        labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        return cls(labels=labels, multi_label=config.problem_type == "multi_label_classification")

    def outputs(self, model_outputs, attention_mask):
        return classify(model_outputs.logits, self.labels, self.multi_label)

    def describe(self):
        return {"task": self.name, "labels": dict(enumerate(self.labels)), "multi_label": self.multi_label}


# Token-level tasks live in their own modules (they subclass Task, hence the late import).
from signatures._question_answering import QuestionAnswering  # noqa: E402
from signatures._token_classification import TokenClassification  # noqa: E402

TASKS: dict[str, type[Task]] = {t.name: t for t in (FeatureExtraction, TextClassification, TokenClassification,
                                                    QuestionAnswering)}
