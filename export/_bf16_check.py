"""What `--mixed_precision=bfloat16` costs in accuracy: the reloaded SavedModel with and without it.

TF Serving's `--mixed_precision=bfloat16` turns on grappler's
`auto_mixed_precision_onednn_bfloat16` rewrite for the whole session
(`server.SessionOptions(mixed_precision="bfloat16")`, the same option the
server sets). This check loads the staged SavedModel once more under that
rewrite, runs each string signature on the parity corpus in batches of 32,
and compares with the float32 session: the minimum cosine similarity of
embeddings, the argmax agreement of classifier outputs, and the largest
absolute difference of probabilities. On a CPU without bfloat16 instructions
(`avx512_bf16`, `amx_bf16`) grappler may leave the graph as it is (measured
on an AMD EPYC with TensorFlow 2.20: outputs equal float32's bit for bit);
the report says so.

>>> report = bf16_check(fp32_session, "models/minilm/1", texts)
>>> report["outputs"]["text: embedding"]["min_cosine"] > 0.99
True
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from export._bucket_parity import string_signatures, text_feed
from export._serving_session import ServingSession

__all__ = ["bf16_check", "format_bf16_check", "compare_outputs"]

BATCH_SIZE = 32


def bf16_check(fp32: ServingSession, path, texts: list[str], batch_size: int = BATCH_SIZE) -> dict:
    """Each string signature of the SavedModel at `path`: bf16 rewrite vs `fp32` (a loaded session)."""
    from server import SessionOptions, cpu_bf16_flags, load_saved_model

    loaded = load_saved_model(path, options=SessionOptions(mixed_precision="bfloat16"))
    bf16 = ServingSession(loaded.session, loaded.signature_defs)
    outputs: dict[str, dict] = {}
    try:
        chunks = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
        steps = [(name, chunk) for chunk in chunks for name in string_signatures(fp32)]
        for name, chunk in tqdm(steps, desc="bf16 check", unit="call", disable=None if len(steps) > 2 else True):
            feed = text_feed(fp32, name, chunk)
            want, got = fp32.run(name, feed), bf16.run(name, feed)
            for out, figures in compare_outputs(want, got).items():
                _accumulate(outputs.setdefault(f"{name}: {out}", {}), figures)
    finally:
        bf16.close()
    for figures in outputs.values():
        if "agree" in figures:
            figures["argmax_agreement"] = figures.pop("agree") / figures.pop("rows")
    # Grappler skips the rewrite where oneDNN has no bf16 path for the CPU: outputs then equal fp32's.
    unchanged = all(f.get("min_cosine", 1.0) == 1.0 and f.get("max_abs_diff", 0.0) == 0.0
                    and f.get("argmax_agreement", 1.0) == 1.0 for f in outputs.values())
    return {"texts": len(texts), "batch_size": batch_size, "rewrite": "auto_mixed_precision_onednn_bfloat16",
            "cpu_bf16_flags": list(cpu_bf16_flags()), "rewrite_changed_outputs": not unchanged,
            "outputs": outputs}


def compare_outputs(want: dict, got: dict) -> dict[str, dict]:
    """Per output: min cosine (embeddings), argmax agreement (logits/probabilities), max abs diff (probabilities)."""
    figures: dict[str, dict] = {}
    for out in want:
        if out not in ("embedding", "logits", "probabilities"):
            continue
        ref, low = np.asarray(want[out], np.float64), np.asarray(got[out], np.float64)
        if out == "embedding":
            norms = np.linalg.norm(ref, axis=-1) * np.linalg.norm(low, axis=-1)
            figures[out] = {"min_cosine": float(((ref * low).sum(-1) / np.maximum(norms, 1e-12)).min())}
        else:
            figures[out] = {"agree": int((ref.argmax(-1) == low.argmax(-1)).sum()), "rows": len(ref)}
            if out == "probabilities":
                figures[out]["max_abs_diff"] = float(np.abs(ref - low).max())
    return figures


def _accumulate(total: dict, figures: dict) -> None:
    for key, value in figures.items():
        if key == "min_cosine":
            total[key] = min(total.get(key, 1.0), value)
        elif key == "max_abs_diff":
            total[key] = max(total.get(key, 0.0), value)
        else:
            total[key] = total.get(key, 0) + value


def format_bf16_check(report: dict) -> str:
    cpu = ", ".join(report["cpu_bf16_flags"]) or "none of avx512_bf16/amx_bf16"
    lines = [f"bf16 check ({report['rewrite']}, {report['texts']} texts in batches of {report['batch_size']}; "
             f"CPU bf16: {cpu})"]
    if not report["rewrite_changed_outputs"]:
        lines.append("  outputs equal float32's exactly: grappler did not rewrite the graph on this CPU "
                     "(no oneDNN bf16 path), so --mixed_precision=bfloat16 changes nothing here")
    for label, figures in report["outputs"].items():
        lines.append(f"  {label.ljust(32)}" + ", ".join(f"{k} {v:.6g}" for k, v in figures.items()))
    return "\n".join(lines)
