"""The serving signatures an export assembles: tokenizer, tasks, post-processing.

>>> from signatures import ServingModule, WordPieceTokenizer, FeatureExtraction, architecture_for
"""
from signatures._architectures import ARCHITECTURES, Architecture, architecture_for
from signatures._buckets import DEFAULT_MAX_TOKENS, DEFAULT_MIN_FILL, BucketPolicy, run_in_buckets
from signatures._byte_pair import BytePairTokenizer
from signatures._module import DEFAULT_SIGNATURE_CHOICES, ServingModule
from signatures._question_answering import QuestionAnswering
from signatures._token_classification import AGGREGATIONS, TokenClassification
from signatures._packer import TEMPLATES, SegmentPacker
from signatures._postprocess import POOLINGS, classify, l2_normalize, pool
from signatures._sentencepiece import SentencePieceTokenizer
from signatures._tasks import TASKS, FeatureExtraction, Task, TextClassification
from signatures._tokenizer import Tokenizer
from signatures._wordpiece import TOKENIZER_KINDS, WordPieceTokenizer

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "architecture_for",
    "BucketPolicy",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MIN_FILL",
    "run_in_buckets",
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
    "BytePairTokenizer",
    "SentencePieceTokenizer",
    "TOKENIZER_KINDS",
    "WordPieceTokenizer",
]
