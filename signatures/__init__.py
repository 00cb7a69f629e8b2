"""The serving signatures an export assembles: tokenizer, tasks, post-processing.

>>> from signatures import ServingModule, WordPieceTokenizer, FeatureExtraction, architecture_for
"""
from signatures._architectures import ARCHITECTURES, Architecture, architecture_for
from signatures._module import DEFAULT_SIGNATURE_CHOICES, ServingModule
from signatures._postprocess import POOLINGS, classify, l2_normalize, pool
from signatures._question_answering import QuestionAnswering
from signatures._tasks import TASKS, FeatureExtraction, Task, TextClassification
from signatures._token_classification import AGGREGATIONS, TokenClassification
from signatures._packer import TEMPLATES, SegmentPacker
from signatures._tokenizer import Tokenizer
from signatures._wordpiece import TOKENIZER_KINDS, WordPieceTokenizer

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "architecture_for",
    "DEFAULT_SIGNATURE_CHOICES",
    "ServingModule",
    "POOLINGS",
    "classify",
    "l2_normalize",
    "pool",
    "TASKS",
    "Task",
    "FeatureExtraction",
    "TextClassification",
    "TokenClassification",
    "AGGREGATIONS",
    "QuestionAnswering",
    "TEMPLATES",
    "SegmentPacker",
    "Tokenizer",
    "TOKENIZER_KINDS",
    "WordPieceTokenizer",
]
