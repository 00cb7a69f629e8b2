"""Decode the dense outputs of token classification and question answering into Python objects.

The exported `text` signatures return padded tensors (see signatures/); these
turn a `predict` result or a `predict_batched` BatchResult back into what
Hugging Face's pipelines return, one item per input row, in input order:

- token classification: a list of entity dicts per text,
  {"entity_group", "score", "word", "start", "end"}; `word` is
  text[start:end], the entity as it appears in the text sent.
- question answering: one dict per question, {"answer", "score", "start", "end"};
  the empty answer ("" at 0:0, score 0) when the context or question is empty.

>>> out = client.predict("ner", ["Ada Lovelace was born in London."])  # doctest: +SKIP
>>> entities(out)[0]  # doctest: +SKIP
[{'entity_group': 'PER', 'score': 0.99, 'word': 'Ada Lovelace', 'start': 0, 'end': 12}, ...]
>>> answers(client.predict("qa", {"question": ["Where?"], "context": ["In London."]}))  # doctest: +SKIP
[{'answer': 'London', 'score': 0.87, 'start': 3, 'end': 9}]
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["ENTITY_OUTPUTS", "ANSWER_OUTPUTS", "entities", "answers", "decode_task_rows"]

ENTITY_OUTPUTS = ("entity_label", "entity_score", "entity_start", "entity_end", "entity_text", "num_entities")
ANSWER_OUTPUTS = ("answer", "score", "start", "end")


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _rows(outputs) -> tuple[int, np.ndarray]:
    """(rows, ok mask): a BatchResult's failed rows decode to None."""
    first = outputs[next(iter(outputs.keys()))]
    ok = getattr(outputs, "ok", None)
    return len(first), np.ones(len(first), bool) if ok is None else ok


def _check(outputs, names: tuple[str, ...], task: str) -> None:
    missing = [n for n in names if n not in outputs.keys()]
    if missing:
        raise ValueError(f"not {task} outputs: {sorted(missing)} missing from {sorted(outputs.keys())}; "
                         f"call the `text` signature of a model exported with --task {task}")


def entities(outputs: Mapping[str, np.ndarray]) -> list[list[dict] | None]:
    """Per text, its entities (None for a row that failed in predict_batched)."""
    _check(outputs, ENTITY_OUTPUTS, "token-classification")
    n, ok = _rows(outputs)
    result: list[list[dict] | None] = []
    for i in range(n):
        if not ok[i]:
            result.append(None)
            continue
        count = int(outputs["num_entities"][i])
        row = {k: np.asarray(outputs[k][i]) for k in ENTITY_OUTPUTS if k != "num_entities"}
        result.append([{"entity_group": _text(row["entity_label"][j]), "score": float(row["entity_score"][j]),
                        "word": _text(row["entity_text"][j]), "start": int(row["entity_start"][j]),
                        "end": int(row["entity_end"][j])} for j in range(count)])
    return result


def answers(outputs: Mapping[str, np.ndarray]) -> list[dict | None]:
    """Per question, its best answer (None for a row that failed in predict_batched)."""
    _check(outputs, ANSWER_OUTPUTS, "question-answering")
    n, ok = _rows(outputs)
    return [{"answer": _text(outputs["answer"][i]), "score": float(outputs["score"][i]),
             "start": int(outputs["start"][i]), "end": int(outputs["end"][i])} if ok[i] else None
            for i in range(n)]


def decode_task_rows(outputs: Mapping[str, np.ndarray]) -> tuple[str, list] | None:
    """("entities", rows) or ("answer", rows) when the outputs are a token-level task's, else None."""
    keys = set(outputs.keys())
    if set(ENTITY_OUTPUTS) <= keys:
        return "entities", entities(outputs)
    if set(ANSWER_OUTPUTS) <= keys and "answer" in keys:
        return "answer", answers(outputs)
    return None
