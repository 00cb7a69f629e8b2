"""What the tests compare exports against: Hugging Face's own tokenizers and PyTorch models.

- `hf_tokenizer(path)`: the checkpoint's tokenizer as `AutoTokenizer` loads it (the fast one).
- `byte_offsets(text, spans)`: Hugging Face's character spans as the UTF-8 byte spans tf-text reports.
- `sentence_embeddings(path, texts, **encode)`: what sentence-transformers computes for a BERT checkpoint
  (tokenizer, BertModel, mean pooling over the real tokens, L2 normalisation), with the encoding it ran.

>>> embeddings, encoded = sentence_embeddings(checkpoint, ["hello world"], truncation=True, max_length=256)
>>> embeddings.shape, sorted(encoded)  # doctest: +SKIP
((1, 384), ['attention_mask', 'input_ids', 'token_type_ids'])
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["byte_offsets", "hf_tokenizer", "sentence_embeddings"]


def hf_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def byte_offsets(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    at = [len(text[:i].encode()) for i in range(len(text) + 1)]
    return [(at[a], at[b]) for a, b in spans]


def sentence_embeddings(path: str | Path, texts: list[str], **encode) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`encode`: the tokenizer call's options besides padding (truncation, max_length)."""
    import torch
    from transformers import BertModel

    encoded = hf_tokenizer(path)(texts, padding=True, return_tensors="pt", **encode)
    with torch.no_grad():
        hidden = BertModel.from_pretrained(str(path)).eval()(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return (torch.nn.functional.normalize(pooled, p=2, dim=1).numpy(),
            {k: v.numpy() for k, v in encoded.items()})
