"""The benchmark corpus: real English sentences of mixed lengths, deterministic.

`bench/corpus.txt` holds 139 texts written for this project (search-style
queries, ordinary sentences and paragraphs of up to ~90 words); nothing is
downloaded. `make_corpus(n)` shuffles them with a fixed seed and cycles, so
every scenario of a run - and every run - sees the same texts in the same
order, cut into the same batches.

>>> texts = make_corpus(64)
>>> len(texts), texts == make_corpus(64)
(64, True)
"""
from __future__ import annotations

import functools
import random
import statistics
from pathlib import Path

__all__ = ["CORPUS_FILE", "SHORT_WORDS", "load_sentences", "make_corpus", "batches", "corpus_stats", "padding_stats"]

CORPUS_FILE = Path(__file__).with_name("corpus.txt")
SEED = 20240607


@functools.lru_cache(maxsize=None)
def load_sentences(path: str | Path = CORPUS_FILE) -> tuple[str, ...]:
    """The texts of the corpus file (one a line; blank lines and '#' comments skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    texts = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not texts:
        raise ValueError(f"no texts in {path}")
    return texts


#: word counts of the "short" texts (11-15 words: 14-22 tokens, 17 on average, for MiniLM)
SHORT_WORDS = (11, 15)


def make_corpus(n: int, seed: int = SEED, path: str | Path = CORPUS_FILE,
                words: tuple[int, int] | None = None) -> list[str]:
    """`n` texts: the corpus shuffled with `seed`, cycled (each pass shuffled anew).
    `words=(lo, hi)` keeps only the texts of lo..hi words (near-uniform lengths)."""
    source = list(load_sentences(path))
    if words is not None:
        source = [t for t in source if words[0] <= len(t.split()) <= words[1]]
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        order = source[:]
        rng.shuffle(order)
        out.extend(order[: n - len(out)])
    return out


def batches(texts: list[str], batch_size: int) -> list[list[str]]:
    """Consecutive batches of `batch_size` texts (the last one may be shorter)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    return [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]


def corpus_stats(texts: list[str], tokenizer=None) -> dict:
    """Word (and, given a HF tokenizer, token) counts of `texts`: mean, median, min, max."""
    def summary(values):
        return {"mean": round(statistics.fmean(values), 1), "median": statistics.median(values),
                "min": min(values), "max": max(values)}

    stats = {"texts": len(texts), "distinct": len(set(texts)), "words": summary([len(t.split()) for t in texts])}
    if tokenizer is not None:
        stats["tokens"] = summary([len(ids) for ids in tokenizer(texts)["input_ids"]])
    return stats


def padding_stats(texts: list[str], batch_sizes, tokenizer, max_length: int = 256) -> dict[int, dict]:
    """Per batch size: real tokens, tokens computed once each batch is padded to its
    longest text, and their ratio (the work a batch of mixed lengths wastes)."""
    lengths = [min(len(ids), max_length) for ids in tokenizer(texts)["input_ids"]]
    out = {}
    for bs in batch_sizes:
        chunks = [lengths[i:i + bs] for i in range(0, len(lengths), bs)]
        real = sum(lengths)
        padded = sum(len(c) * max(c) for c in chunks)
        out[bs] = {"real_tokens": real, "padded_tokens": padded, "padded_over_real": round(padded / real, 3)}
    return out
