"""Which Transformers architectures the serving signatures support, and how.

An architecture is supported when its tokenizer can run in graph with ops that
`tensorflow_model_server` links and its TF model class takes the inputs the
signatures feed. Adding one is one entry here: the tokenizer algorithm
(which files it reads), the special-token template, whether the model takes
`token_type_ids`, and how SentencePiece ids map to the model's.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Architecture", "ARCHITECTURES", "UNSUPPORTED", "architecture_for"]


@dataclass(frozen=True)
class Architecture:
    """What the signatures need to know about a model family.

    `template` is "bert" (`[CLS] a [SEP] b [SEP]`) or "roberta"
    (`<s> a </s></s> b </s>`); `fairseq_ids` says the SentencePiece ids are
    shifted by one behind `<s> <pad> </s> <unk>`, with `<mask>` last (XLM-R);
    `exact_relative_buckets` replaces the model's float relative-position
    buckets, which grappler's constant folding shifts, by an integer table
    (signatures/_relative_buckets.py).
    """

    model_type: str
    tokenizer: str = "wordpiece"
    template: str = "bert"
    uses_token_type_ids: bool = True
    fairseq_ids: bool = False
    exact_relative_buckets: bool = False


ARCHITECTURES: dict[str, Architecture] = {
    a.model_type: a
    for a in (
        Architecture("bert"),
        Architecture("electra"),
        Architecture("distilbert", uses_token_type_ids=False),
        Architecture("mpnet", template="roberta", uses_token_type_ids=False, exact_relative_buckets=True),
        Architecture("roberta", tokenizer="byte_pair", template="roberta", uses_token_type_ids=False),
        Architecture("xlm-roberta", tokenizer="sentencepiece", template="roberta", uses_token_type_ids=False,
                     fairseq_ids=True),
    )
}

# Families users ask for that cannot be exported here, and why.
UNSUPPORTED: dict[str, str] = {
    "gpt2": "a decoder without a [CLS]-style template or a sequence-classification head the signatures "
            "can pool; its byte-level BPE is supported for RoBERTa",
    "t5": "an encoder-decoder; the signatures serve encoder-only models",
    "bart": "an encoder-decoder; the signatures serve encoder-only models",
    "llama": "a decoder-only generative model; the signatures serve encoder-only models",
    "albert": "its tokenizer lower-cases and strips accents before SentencePiece, which the in-graph "
              "SentencePiece tokenizer does not do yet",
}


def architecture_for(model_type: str) -> Architecture:
    """The supported architecture for a config's `model_type`, or ValueError saying why not."""
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        why = UNSUPPORTED.get(model_type, "no in-graph tokenizer and signature wiring exist for it")
        raise ValueError(f"unsupported architecture {model_type!r} ({why}); "
                         f"supported: {', '.join(sorted(ARCHITECTURES))}") from None
