"""The checks an export runs on the staged SavedModel, one function per concern.

Each step logs its figures and raises VerificationError when the artifact
fails it; `verify()` runs them in order (numeric parity, tokenizer parity,
op check, warmup file) and returns what the model card records.

>>> result = verify(Staged(options, checkpoint, task, model, module, staged_dir, max_length), corpus, timings, log)
>>> result.parity["ok"], result.ops.ok
(True, True)
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from export._errors import VerificationError

__all__ = ["Staged", "Verification", "verify", "timed", "VERIFICATION_STEPS"]

VERIFICATION_STEPS = ("parity", "tokenizer_parity", "pipeline_parity", "bucket_parity", "bf16_check", "op_check",
                      "warmup")


@contextlib.contextmanager
def timed(timings: dict, step: str):
    start = time.perf_counter()
    yield
    timings[step] = round(time.perf_counter() - start, 3)


@dataclass
class Staged:
    """An export in progress: what it was built from and where it is staged."""

    options: object  # ExportOptions
    checkpoint: object  # Checkpoint
    task: object  # signatures.Task
    model: object  # the TF model
    module: object  # signatures.ServingModule
    path: Path  # the staged version directory
    max_length: int

    @property
    def nothing_written(self) -> str:
        return f"nothing was written to {Path(self.options.output_dir) / self.options.name}"


@dataclass
class Verification:
    """What the checks found, for the model card."""

    target_serving: str
    ops: object  # OpCheck
    parity: dict | None = None
    tokenizer_parity: dict | None = None
    pipeline_parity: dict | None = None
    length_buckets: dict | None = None
    bf16: dict | None = None
    warmup: dict | None = None


def numeric_parity_step(staged: Staged, log):
    """PyTorch vs TF vs SavedModel, layer by layer; returns (figures, the loaded SavedModel session)."""
    from export._parity import format_parity, numeric_parity

    options = staged.options
    report = numeric_parity(staged.model, staged.module, staged.task, staged.checkpoint, staged.path,
                            max_error=options.max_error,
                            uses_token_type_ids=staged.module.tokenizer.uses_token_type_ids,
                            attentions=options.output_attentions)
    log(format_parity(report.as_dict()))
    if not report.ok:
        if report.loaded is not None:
            report.loaded.close()
        raise VerificationError(f"numeric parity failed: {report.first_failure} (figures above); "
                                f"{staged.nothing_written}")
    return report.as_dict(), report.loaded


def tokenizer_parity_step(staged: Staged, corpus: list[str] | None, log) -> dict:
    from export._tokenizer_parity import format_tokenizer_parity, hf_tokenizer, tokenizer_parity

    strict = staged.options.strict_tokenizer
    tokens = tokenizer_parity(staged.module.tokenizer, hf_tokenizer(staged.checkpoint.path),
                              max_length=staged.max_length, extra=corpus).as_dict()
    log(format_tokenizer_parity(tokens, strict))
    if tokens["mismatches"] and strict:
        raise VerificationError(f"tokenizer parity failed (--strict-tokenizer): {tokens['mismatches']} of "
                                f"{tokens['texts']} texts tokenize differently from the checkpoint's fast tokenizer "
                                f"(shown above); {staged.nothing_written}")
    return tokens


def pipeline_parity_step(staged: Staged, loaded, corpus: list[str] | None, log) -> dict | None:
    """Token-level tasks: the exported `text` signature vs transformers.pipeline on the PyTorch weights."""
    from export._task_parity import format_task_parity, pipeline_parity
    from export._tokenizer_parity import CORPUS

    if not staged.checkpoint.from_pt:
        log("pipeline parity: skipped (the checkpoint has TF weights, the pipeline reference runs PyTorch)")
        return None
    texts = None if corpus is None else [*CORPUS, *(("file", t) for t in corpus)]
    report = pipeline_parity(staged.task, staged.checkpoint, loaded, staged.module.tokenizer,
                             max_length=staged.max_length, texts=texts).as_dict()
    log(format_task_parity(report))
    if not report["ok"]:
        raise VerificationError(f"pipeline parity failed: {report['mismatches']} of {report['texts']} inputs differ "
                                f"from the Hugging Face pipeline, max score error {report['max_score_error']:.2e} "
                                f"(shown above); {staged.nothing_written}")
    return report


def bucket_parity_step(staged: Staged, loaded, corpus: list[str] | None, log) -> dict | None:
    """Bucketed string signatures vs the plain computation, on the parity corpus; the card's `length_buckets`."""
    from export._bucket_parity import bucket_parity, format_bucket_parity
    from export._exporter import bucket_policy
    from export._tokenizer_parity import CORPUS

    policy = bucket_policy(staged.options)
    if policy is None:
        return None
    report = bucket_parity(loaded, staged.module.tokenizer, [t for _, t in CORPUS] + list(corpus or []))
    log(format_bucket_parity(report))
    if not report["ok"]:
        raise VerificationError(f"length-bucketing parity failed: bucketed outputs differ from the plain "
                                f"computation by more than {report['bound']:g} (figures above); "
                                f"{staged.nothing_written}")
    return {"policy": policy.describe(), "parity": report}


def bf16_step(staged: Staged, loaded, corpus: list[str] | None, log) -> dict:
    """--verify-bf16: the accuracy cost of --mixed_precision=bfloat16, for the card's `bf16` (never fails)."""
    from export._bf16_check import bf16_check, format_bf16_check
    from export._tokenizer_parity import CORPUS

    report = bf16_check(loaded, staged.path, [t for _, t in CORPUS] + list(corpus or []))
    log(format_bf16_check(report))
    return report


def op_check_step(staged: Staged, target_serving: str, log):
    from export._opcheck import check_ops

    ops = check_ops(staged.path, target_serving, tokenizer=staged.options.tokenizer)
    log(ops.summary())
    if not ops.ok:
        raise VerificationError(f"op check failed: {ops.error()}; {staged.nothing_written}")
    return ops


def warmup_step(staged: Staged, loaded, log) -> dict:
    from export._summary import read_signatures
    from export._warmup import read_warmup, replay, write_warmup
    from protocol import WARMUP_DIR, WARMUP_FILE

    options = staged.options
    warmup = write_warmup(staged.path, options.name, read_signatures(staged.path),
                          staged.module.tokenizer.get_vocabulary(), staged.max_length, options.warmup_records)
    if loaded is not None:  # replay one request per signature, as TF Serving does at load
        warmup["replayed"] = replay(loaded, read_warmup(staged.path))
    log(f"warmup: {warmup['records']} records in {WARMUP_DIR}/{WARMUP_FILE}"
        + (f" ({warmup['replayed']} replayed on the SavedModel)" if "replayed" in warmup else ""))
    return warmup


def verify(staged: Staged, corpus: list[str] | None, timings: dict, log) -> Verification:
    """Every check on the staged version, timed into `timings`."""
    from export._opcheck import default_target

    from export._exporter import bucket_policy

    options = staged.options
    loaded = parity = tokens = warmup = buckets = bf16 = tasks = None
    policy = bucket_policy(options)
    try:
        if options.verify:
            with timed(timings, "parity"):
                parity, loaded = numeric_parity_step(staged, log)
            with timed(timings, "tokenizer_parity"):
                tokens = tokenizer_parity_step(staged, corpus, log)
            if getattr(staged.task, "pipeline_parity", False):
                with timed(timings, "pipeline_parity"):
                    tasks = pipeline_parity_step(staged, loaded, corpus, log)
            if policy is not None:
                with timed(timings, "bucket_parity"):
                    buckets = bucket_parity_step(staged, loaded, corpus, log)
            if options.verify_bf16:
                with timed(timings, "bf16_check"):
                    bf16 = bf16_step(staged, loaded, corpus, log)
        target = options.target_serving or default_target()
        with timed(timings, "op_check"):
            ops = op_check_step(staged, target, log)
        if options.warmup:
            with timed(timings, "warmup"):
                warmup = warmup_step(staged, loaded, log)
    finally:
        if loaded is not None:
            loaded.close()
    steps = {k: timings[k] for k in VERIFICATION_STEPS if k in timings}
    log(f"verification added {sum(steps.values()):.1f}s (" + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items())
        + ")")
    if buckets is None and policy is not None:  # --no-verify: the policy without its parity figures
        buckets = {"policy": policy.describe(), "parity": None}
    return Verification(target_serving=target, ops=ops, parity=parity, tokenizer_parity=tokens,
                        pipeline_parity=tasks, length_buckets=buckets, bf16=bf16, warmup=warmup)
