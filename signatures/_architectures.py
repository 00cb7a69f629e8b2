"""Which Transformers architectures the serving signatures support, and how.

An architecture is supported when its tokenizer can run in graph with ops that
`tensorflow_model_server` links and its TF model class takes the inputs the
signatures feed. Adding one (say ELECTRA) is one entry here.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Architecture", "ARCHITECTURES", "UNSUPPORTED", "architecture_for"]


@dataclass(frozen=True)
class Architecture:
    """What the signatures need to know about a model family."""

    model_type: str
    tokenizer: str = "wordpiece"
    uses_token_type_ids: bool = True


ARCHITECTURES: dict[str, Architecture] = {
    a.model_type: a
    for a in (
        Architecture("bert"),
        Architecture("electra"),
        Architecture("distilbert", uses_token_type_ids=False),
    )
}

# Families users ask for that cannot be exported with an in-graph tokenizer, and why.
UNSUPPORTED: dict[str, str] = {
    "roberta": "byte-level BPE, which tensorflow-text has no op for",
    "gpt2": "byte-level BPE, which tensorflow-text has no op for",
    "xlm-roberta": "SentencePiece with a fairseq id offset",
}


def architecture_for(model_type: str) -> Architecture:
    """The supported architecture for a config's `model_type`, or ValueError saying why not."""
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        why = UNSUPPORTED.get(model_type, "no in-graph tokenizer is implemented for it")
        raise ValueError(f"unsupported architecture {model_type!r} ({why}); "
                         f"supported: {', '.join(sorted(ARCHITECTURES))}") from None
