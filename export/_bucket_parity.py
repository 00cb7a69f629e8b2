"""Length-bucketing parity: does a bucketed string signature compute what the plain one does?

The string signatures of a bucketed export (`text`, `text_pair`) run the
encoder on length-ordered sub-batches (signatures/_buckets.py). The plain
computation of the same batch is the `tokens` signature fed the in-graph
tokenizer's packed ids: one encoder call over the whole batch padded to its
longest row. Both run in the reloaded SavedModel (a TF1 Session, by tensor
names, as TF Serving runs it) on the parity corpus in batches of 32 in
arrival order; every output the two share must agree within `bound` on real
tokens. Outputs computed after the encoder that `tokens` does not have
(`token_count`, a task's entities and answers) are listed as not compared:
their own parity is the pipeline-parity step's.

>>> report = bucket_parity(session, module.tokenizer, texts, bound=1e-6)
>>> report["ok"], report["max_abs_error"]["text: embedding"] < 1e-6
(True, True)
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from export._parity import _numeric, _real_tokens
from export._parity import _strings as _string_rows

__all__ = ["BUCKET_PARITY_BOUND", "bucket_parity", "format_bucket_parity", "string_signatures", "text_feed"]

BUCKET_PARITY_BOUND = 1e-6
BATCH_SIZE = 32  # the batch the bench targets; arrival order, so each batch mixes lengths


def bucket_parity(session, tokenizer, texts: list[str], *, bound: float = BUCKET_PARITY_BOUND,
                  batch_size: int = BATCH_SIZE) -> dict:
    """Each string signature vs `tokens` on the same packed batch; max abs error per output."""
    import tensorflow as tf

    names = string_signatures(session)
    token_inputs = set(session.signature_defs["tokens"].inputs)
    errors: dict[str, float] = {}
    differing: dict[str, int] = {}
    not_compared: set[str] = set()
    chunks = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    steps = [(name, chunk) for chunk in chunks for name in names]
    for name, chunk in tqdm(steps, desc="bucket parity", unit="call", disable=None if len(steps) > 2 else True):
        feed = text_feed(session, name, chunk)
        pair = chunk[::-1] if "text_pair" in feed else None
        got = session.run(name, feed)
        encoded = {k: v.numpy() for k, v in tokenizer(tf.constant(chunk),
                                                      None if pair is None else tf.constant(pair)).items()}
        want = session.run("tokens", {k: v for k, v in encoded.items() if k in token_inputs})
        for out, value in got.items():
            if out not in want:  # token_count, a task's entities: computed after the encoder, not by `tokens`
                not_compared.add(f"{name}: {out}")
                continue
            label = f"{name}: {out}"
            if value.dtype.kind in "SUO":
                row = _string_rows(label, "", value, want[out])
                differing[label] = differing.get(label, 0) + row.differing_rows
                continue
            mask = _real_tokens(out, want[out].shape, encoded["attention_mask"])
            row = _numeric(label, "", value, want[out], bound, mask)
            errors[label] = max(errors.get(label, 0.0), row.max_abs_error)
    ok = all(e <= bound for e in errors.values()) and not any(differing.values())
    return {"bound": bound, "texts": len(texts), "batch_size": batch_size, "batches": len(chunks),
            "signatures": names, "max_abs_error": errors, "differing_rows": differing or None,
            "not_compared": sorted(not_compared), "ok": ok}


def string_signatures(session) -> list[str]:
    """The signatures that take `text`; `serving_default` only when no other does (it is `text` again)."""
    names = [n for n in session.names if "text" in session.signature_defs[n].inputs]
    others = [n for n in names if n != "serving_default"]
    return others or names


def text_feed(session, name: str, texts: list[str]) -> dict:
    """The inputs of string signature `name` for `texts` (pairs: the texts reversed, as numeric parity)."""
    feed = {"text": _utf8(texts)}
    if "text_pair" in session.signature_defs[name].inputs:
        feed["text_pair"] = _utf8(texts[::-1])
    return feed


def _utf8(texts: list[str]) -> np.ndarray:
    return np.array([t.encode("utf-8") for t in texts], dtype=object)


def format_bucket_parity(report: dict) -> str:
    """One line per output: bucketed vs plain, max abs error, ok or FAIL."""
    lines = [f"length-bucketing parity ({report['texts']} texts in {report['batches']} batches of "
             f"{report['batch_size']}, arrival order; bound {report['bound']:g})"]
    for label, error in report["max_abs_error"].items():
        lines.append(f"  {label.ljust(36)}{error:>12.2e}  {'ok' if error <= report['bound'] else 'FAIL'}")
    for label, n in (report.get("differing_rows") or {}).items():
        lines.append(f"  {label.ljust(36)}{n:>5} rows differ  {'ok' if not n else 'FAIL'}")
    if report.get("not_compared"):
        lines.append(f"  not compared (no output of `tokens`): {', '.join(report['not_compared'])}")
    return "\n".join(lines)
