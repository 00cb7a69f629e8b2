"""Numeric parity: does the export compute what the reference model computes?

Two comparisons, each as the maximum absolute error per output:

- PyTorch reference (when the checkpoint has PyTorch weights) vs the converted
  TF model: every output the signatures expose (the task's outputs, computed
  on the PyTorch side by an independent reference of the post-processing),
  plus the hidden states layer by layer, so a mismatch names the first layer
  where it appears.
- The reloaded SavedModel, called through each signature, vs the in-memory
  TF model run eagerly on the same inputs.

Token-level outputs are compared on real tokens only (padding positions mean
nothing). String outputs (a classifier's `label`) count differing rows, where
a near-tie of the reference (top two within the bound) is not a difference.

>>> report = numeric_parity(model, module, task, checkpoint, staged, max_error=1e-5)
>>> report.ok, report.first_failure
(True, None)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export._serving_session import ServingSession

__all__ = ["Comparison", "ParityReport", "numeric_parity", "parity_texts", "format_parity"]


@dataclass
class Comparison:
    name: str  # the output, e.g. "embedding", "hidden_states[2]", "text: embedding"
    where: str  # what it is, e.g. "encoder layer 2"
    max_abs_error: float | None = None  # numeric outputs
    differing_rows: int | None = None  # string outputs
    ok: bool = True

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None and v != ""}

    @property
    def label(self) -> str:
        return f"{self.name} ({self.where})" if self.where else self.name


@dataclass
class ParityReport:
    max_error: float
    texts: int
    batches: list[list[int]]  # [rows, padded length] of each batch the texts were run in
    pytorch_vs_tf: list[Comparison] | None = None
    pytorch_note: str = ""
    saved_model_vs_tf: list[Comparison] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step
    loaded: ServingSession | None = None  # the reloaded SavedModel, for later checks (not in the report)

    @property
    def failures(self) -> list[tuple[str, Comparison]]:
        groups = [("PyTorch vs TF", self.pytorch_vs_tf or []), ("SavedModel vs TF", self.saved_model_vs_tf)]
        return [(group, c) for group, rows in groups for c in rows if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def first_failure(self) -> str | None:
        if self.ok:
            return None
        group, c = self.failures[0]
        figure = (f"max abs error {c.max_abs_error:.3g}" if c.max_abs_error is not None
                  else f"{c.differing_rows} differing row(s)")
        return f"{group}: first mismatch at {c.label}, {figure} > --max-error {self.max_error:g}"

    def as_dict(self) -> dict:
        return {
            "max_error": self.max_error, "texts": self.texts, "batches": self.batches, "ok": self.ok,
            "first_failure": self.first_failure,
            "pytorch_vs_tf": None if self.pytorch_vs_tf is None else [c.as_dict() for c in self.pytorch_vs_tf],
            "pytorch_note": self.pytorch_note or None,
            "saved_model_vs_tf": [c.as_dict() for c in self.saved_model_vs_tf],
            "seconds": round(self.seconds, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
        }


def parity_texts() -> list[str]:
    """A small batch from the tokenizer corpus: one text of each kind that matters numerically."""
    from export._tokenizer_parity import CORPUS

    wanted = ("english", "punctuation", "accents", "cjk", "emoji", "special-tokens", "long", "empty")
    return [next(text for kind, text in CORPUS if kind == k) for k in wanted]


def _numeric(name: str, where: str, got, want, bound: float, mask=None) -> Comparison:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return Comparison(name, f"{where}; shape {list(got.shape)} vs reference {list(want.shape)}".lstrip("; "),
                          max_abs_error=float("inf"), ok=False)
    diff = np.abs(got - want)
    if mask is not None:  # real tokens only, broadcast to the output's shape
        diff = diff[mask.astype(bool)]
    error = float(diff.max()) if diff.size else 0.0
    if not np.isfinite(error):
        error = float("inf")
    return Comparison(name, where, max_abs_error=error, ok=error <= bound)


def _real_tokens(output: str, shape: tuple, mask: np.ndarray):
    """Where an output holds real tokens (not padding), broadcast to its shape; None if not token-level."""
    if output.endswith("last_hidden_state") and len(shape) == 3:
        return np.broadcast_to(mask[:, :, None], shape)
    if output.endswith("hidden_states") and len(shape) == 4:  # [batch, layers + 1, seq, hidden]
        return np.broadcast_to(mask[:, None, :, None], shape)
    if output.endswith("attentions") and len(shape) == 5:  # [batch, layers, heads, query, key]
        return np.broadcast_to(mask[:, None, None, :, None], shape)
    return None


def _strings(name: str, where: str, got, want, near_tie=None) -> Comparison:
    got, want = np.asarray(got), np.asarray(want)
    differ = got != want
    if near_tie is not None:
        differ &= ~near_tie
    n = int(differ.sum())
    return Comparison(name, where, differing_rows=n, ok=n == 0)


# -- PyTorch reference ------------------------------------------------------------------

def _torch_task_outputs(task, out, mask) -> dict:
    """The task's post-processing, written independently in torch (sentence-transformers' formulas)."""
    import torch

    if task.name == "feature-extraction":
        hidden = out.last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        if task.pooling == "mean":
            embedding = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        elif task.pooling == "cls":
            embedding = hidden[:, 0]
        else:
            embedding = hidden.masked_fill(m == 0, -1e9).max(1).values
        if task.normalize:
            embedding = torch.nn.functional.normalize(embedding, p=2, dim=1)
        return {"last_hidden_state": hidden.numpy(), "embedding": embedding.numpy()}
    if task.name == "token-classification":  # entities: compared with the pipeline (export/_task_parity.py)
        return {"logits": out.logits.numpy()}
    if task.name == "question-answering":
        return {"start_logits": out.start_logits.numpy(), "end_logits": out.end_logits.numpy()}
    logits = out.logits
    probabilities = torch.sigmoid(logits) if task.multi_label else torch.softmax(logits, dim=-1)
    top = torch.topk(probabilities, k=min(2, probabilities.shape[-1]), dim=-1).values
    return {"logits": logits.numpy(), "probabilities": probabilities.numpy(),
            "label": np.array([task.labels[i].encode() for i in probabilities.argmax(-1).tolist()], dtype=object),
            "score": top[:, 0].numpy(), "_margin": (top[:, 0] - top[:, -1]).numpy()}


def _layer_name(i: int) -> str:
    return "embeddings" if i == 0 else f"encoder layer {i}"


def _merge(groups: list[list[Comparison]]) -> list[Comparison]:
    """One row per output over several batches: the largest error, the summed differing rows."""
    merged = {c.name: c for c in groups[0]}
    for rows in groups[1:]:
        for c in rows:
            m = merged.setdefault(c.name, c)
            if m is c:
                continue
            if c.max_abs_error is not None:
                m.max_abs_error = max(m.max_abs_error or 0.0, c.max_abs_error)
            if c.differing_rows is not None:
                m.differing_rows = (m.differing_rows or 0) + c.differing_rows
            if not c.ok and m.ok:
                m.where, m.ok = c.where, False
    return list(merged.values())


def pytorch_vs_tf(model, task, checkpoint, batches: list[dict], *, attentions: bool,
                  bound: float) -> list[Comparison]:
    """Hidden states layer by layer, attentions (when exported), then the task's outputs."""
    import transformers

    pt_class = getattr(transformers, task.auto_class.removeprefix("TF"))
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        reference = pt_class.from_pretrained(str(checkpoint.path), local_files_only=True).eval()
    finally:
        transformers.logging.set_verbosity(verbosity)
    return _merge([_pytorch_rows(reference, model, task, encoded, attentions, bound) for encoded in batches])


def _pytorch_rows(reference, model, task, encoded: dict, attentions: bool, bound: float) -> list[Comparison]:
    import tensorflow as tf
    import torch

    with torch.no_grad():
        pt = reference(**{k: torch.tensor(v, dtype=torch.long) for k, v in encoded.items()},
                       output_hidden_states=True, output_attentions=attentions)
    tf_out = model(**{k: tf.constant(v) for k, v in encoded.items()}, output_hidden_states=True,
                   output_attentions=attentions, training=False)
    mask = encoded["attention_mask"]
    rows = [_numeric(f"hidden_states[{i}]", _layer_name(i), t.numpy(), p.numpy(), bound,
                     _real_tokens("last_hidden_state", tuple(p.shape), mask))
            for i, (t, p) in enumerate(zip(tf_out.hidden_states, pt.hidden_states))]
    if attentions:  # [batch, heads, query, key]: real query rows only
        query_mask = np.broadcast_to(mask[:, None, :, None], tuple(pt.attentions[0].shape))
        rows += [_numeric(f"attentions[{i}]", f"encoder layer {i + 1} attention", t.numpy(), p.numpy(), bound,
                          query_mask) for i, (t, p) in enumerate(zip(tf_out.attentions, pt.attentions))]
    want = _torch_task_outputs(task, pt, torch.tensor(mask, dtype=torch.long))
    got = {k: v.numpy() for k, v in task.outputs(tf_out, tf.constant(mask)).items()}
    for name in got:
        if name not in want:
            continue
        if want[name].dtype == object:
            tie = want["_margin"] <= 2 * bound if "_margin" in want else None
            rows.append(_strings(name, "task output", got[name], want[name], tie))
        else:
            rows.append(_numeric(name, "task output", got[name], want[name], bound,
                                 _real_tokens(name, want[name].shape, mask)))
    return rows


# -- reloaded SavedModel -------------------------------------------------------------------

def _embedding_matrix(model):
    layer = model.get_input_embeddings()
    weight = getattr(layer, "weight", None)
    return weight if weight is not None else layer.weights[0]


def saved_model_vs_tf(session, module, batches: list[tuple[dict, list[str]]], *, bound: float,
                      progress: bool = True) -> list[Comparison]:
    """Each signature of the reloaded SavedModel (a ServingSession) vs the in-memory module run eagerly;
    `batches` are (encoded, texts) pairs."""
    from tqdm import tqdm

    steps = [(name, encoded, texts) for encoded, texts in batches for name in session.names]
    groups: dict[int, list[Comparison]] = {}
    cache: dict = {}
    for name, encoded, texts in tqdm(steps, desc="parity: signatures", unit="call",
                                     disable=None if progress else True):
        groups.setdefault(id(encoded), []).extend(_signature_rows(session, module, name, encoded, texts, bound,
                                                                  cache.setdefault(id(encoded), {})))
    return _merge(list(groups.values()))


def _signature_rows(session, module, name: str, encoded: dict, texts: list[str], bound: float,
                    cache: dict) -> list[Comparison]:
    import tensorflow as tf

    ids = encoded["input_ids"]
    mask = encoded["attention_mask"]
    types = encoded.get("token_type_ids", np.zeros_like(ids))
    pairs = texts[::-1]

    def embeds():
        if "inputs_embeds" not in cache:
            cache["inputs_embeds"] = tf.gather(_embedding_matrix(module.model), ids).numpy()
        return cache["inputs_embeds"]

    def reference(kind: str):
        if kind not in cache:
            real = mask
            if kind in ("text", "text_pair"):
                enc = module.tokenizer(tf.constant(texts), tf.constant(pairs) if kind == "text_pair" else None)
                out = module.run(enc["attention_mask"], enc.get("token_type_ids"), input_ids=enc["input_ids"])
                real = enc["attention_mask"].numpy()
                out["token_count"] = tf.reduce_sum(enc["attention_mask"], axis=1)  # the `token_count` signature
            elif kind == "tokens":
                out = module.run(tf.constant(mask), tf.constant(types), input_ids=tf.constant(ids))
                # serving_default of a `--default-signature tokens` export: Transformers' outputs
                out = {**module.transformers_outputs(tf.constant(mask), tf.constant(types),
                                                     input_ids=tf.constant(ids)), **out}
            else:
                out = module.run(tf.constant(mask), tf.constant(types), inputs_embeds=tf.constant(embeds()))
            cache[kind] = ({k: v.numpy() for k, v in out.items()}, real)
        return cache[kind]

    if getattr(module._task, "pipeline_parity", False) and "input_ids" not in session.signature_defs[name].inputs \
            and "inputs_embeds" not in session.signature_defs[name].inputs:
        return [Comparison(name, "strings in: compared with the Hugging Face pipeline (pipeline parity)")]
    rows = []
    strings = lambda xs: np.array([x.encode() for x in xs], dtype=object)  # noqa: E731
    inputs = set(session.signature_defs[name].inputs)
    if "text_pair" in inputs:
        kind, feed = "text_pair", {"text": strings(texts), "text_pair": strings(pairs)}
    elif "text" in inputs:
        kind, feed = "text", {"text": strings(texts)}
    elif "input_ids" in inputs:
        kind, feed = "tokens", {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    elif "inputs_embeds" in inputs:
        kind, feed = "embeds", {"inputs_embeds": embeds(), "attention_mask": mask, "token_type_ids": types}
    else:
        return [Comparison(name, f"inputs {sorted(inputs)} unknown to the check; not compared")]
    got = session.run(name, {k: v for k, v in feed.items() if k in inputs})
    want, real = reference(kind)
    for out in sorted(got):
        label = f"{name}: {out}"
        if out not in want:
            rows.append(Comparison(label, "not produced by the in-memory model", max_abs_error=float("inf"),
                                   ok=False))
        elif got[out].dtype.kind in "SUO":
            rows.append(_strings(label, "", got[out], want[out]))
        else:
            rows.append(_numeric(label, "", got[out], want[out], bound, _real_tokens(out, want[out].shape, real)))
    return rows


def numeric_parity(model, module, task, checkpoint, staged: Path, *, max_error: float,
                   uses_token_type_ids: bool = True, attentions: bool = False,
                   texts: list[str] | None = None) -> ParityReport:
    """Both comparisons on a small batch of texts; the report says what failed first.

    The token ids come from the exported (in-graph) tokenizer, so the models
    are compared on exactly what serving will feed them; how those ids differ
    from the checkpoint's own tokenizer is the tokenizer parity check's job.
    """
    import time

    import tensorflow as tf

    start = time.perf_counter()
    texts = parity_texts() if texts is None else texts
    batches = []  # long texts apart, so short ones are not padded to the maximum length
    lengths = module.tokenizer(tf.constant(texts))["attention_mask"].numpy().sum(axis=1)
    for group in ([t for t, n in zip(texts, lengths) if n <= 64], [t for t, n in zip(texts, lengths) if n > 64]):
        if group:
            encoded = {k: v.numpy().astype(np.int32) for k, v in module.tokenizer(tf.constant(group)).items()}
            if not uses_token_type_ids:
                encoded.pop("token_type_ids", None)
            batches.append((encoded, group))
    report = ParityReport(max_error=max_error, texts=len(texts),
                          batches=[list(e["input_ids"].shape) for e, _ in batches])
    if checkpoint.from_pt:
        report.pytorch_vs_tf = pytorch_vs_tf(model, task, checkpoint, [e for e, _ in batches], attentions=attentions,
                                             bound=max_error)
    else:
        report.pytorch_note = "the checkpoint has TF weights: no PyTorch reference to compare with"
    report.phases["pytorch_vs_tf"] = time.perf_counter() - start
    report.loaded = ServingSession.load(staged)
    report.phases["reload"] = time.perf_counter() - start - sum(report.phases.values())
    report.saved_model_vs_tf = saved_model_vs_tf(report.loaded, module, batches, bound=max_error)
    report.phases["saved_model_vs_tf"] = time.perf_counter() - start - sum(report.phases.values())
    report.seconds = time.perf_counter() - start
    return report


def _figure(row: dict) -> str:
    if row.get("max_abs_error") is not None:
        return f"{row['max_abs_error']:.2e}"
    if row.get("differing_rows") is not None:
        return f"{row['differing_rows']} rows differ"
    return "-"


def format_parity(report: dict) -> str:
    """The parity table: max abs error per output and per layer, each marked ok or FAIL."""
    shapes = ", ".join(f"{rows}x{length}" for rows, length in report["batches"])
    lines = [f"numeric parity ({report['texts']} texts in batches of {shapes} tokens; "
             f"bound --max-error {report['max_error']:g})"]
    groups = [("PyTorch vs TF", report.get("pytorch_vs_tf")), ("SavedModel vs TF", report.get("saved_model_vs_tf"))]
    labels = [f"{r['name']} ({r['where']})" if r.get("where") else r["name"]
              for _, items in groups for r in items or []]
    width = max([len(label) for label in labels] + [20]) + 6
    for group, items in groups:
        if items is None:
            lines.append(f"  {group}: {report.get('pytorch_note') or 'skipped'}")
            continue
        lines.append(f"  {group.ljust(width - 2)}{'max abs error':>14}")
        for row in items:
            label = f"{row['name']} ({row['where']})" if row.get("where") else row["name"]
            status = "ok" if row.get("ok", True) else "FAIL"
            lines.append(f"    {label.ljust(width - 4)}{_figure(row):>14}  {status}")
    if report.get("first_failure"):
        lines.append(f"  FAILED: {report['first_failure']}")
    return "\n".join(lines)
