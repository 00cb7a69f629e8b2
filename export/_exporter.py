"""Transformers checkpoint -> `models/NAME/VERSION/` SavedModel.

>>> result = export_model(ExportOptions(model="path/to/all-MiniLM-L6-v2", task="feature-extraction",
...                                     name="minilm", output_dir="models"))
>>> result.path
PosixPath('models/minilm/1')
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from export._errors import ExportError, VerificationError
from export._layout import next_version, publish, staging
from export._opcheck import default_target, parse_target, prefetch_op_sets
from export._source import Checkpoint
from export._summary import directory_size, read_signatures
from export._warmup import check_records_option

__all__ = ["ExportOptions", "ExportResult", "export_model", "load_tf_model", "build_task", "VERIFICATION_STEPS"]

VERIFICATION_STEPS = ("parity", "tokenizer_parity", "pipeline_parity", "op_check", "warmup")


@dataclass
class ExportOptions:
    """Everything `python -m export` takes; the CLI flags map one to one."""

    model: str | Path
    task: str = "feature-extraction"
    name: str = "model"
    output_dir: str | Path = "models"
    version: int | None = None
    max_length: int | None = None  # None: the checkpoint's own (sentence-transformers, tokenizer, positions)
    tokenizer: str = "fast"
    default_signature: str = "text"
    output_hidden_states: bool = False
    output_attentions: bool = False
    pooling: str | None = None  # None: the checkpoint's sentence-transformers pooling, else mean
    normalize: bool | None = None  # None: the checkpoint's sentence-transformers setting, else True
    # Verification (export/_parity.py, _tokenizer_parity.py, _opcheck.py) and warmup (_warmup.py).
    verify: bool = True  # numeric and tokenizer parity (the op check always runs)
    max_error: float = 1e-5
    parity_corpus: str | Path | None = None  # extra texts for tokenizer parity, one a line
    strict_tokenizer: bool = False  # tokenizer differences fail the export
    target_serving: str | None = None  # None: the installed tensorflow's version
    warmup: bool = True
    warmup_records: int | None = None  # None: every signature at every warmup shape
    # Token-level tasks (export/_task_parity.py); None: the Hugging Face pipeline's defaults.
    aggregation_strategy: str | None = None  # token-classification: "simple" or "first"
    doc_stride: int | None = None  # question-answering: min(max_length // 2, 128)
    max_answer_length: int | None = None  # question-answering: 15


@dataclass
class ExportResult:
    path: Path
    version: int
    signatures: dict[str, dict]
    size_bytes: int
    timings: dict[str, float] = field(default_factory=dict)
    report: dict = field(default_factory=dict)  # the model card, assets.extra/export_report.json

    @property
    def verification_seconds(self) -> float:
        """What the checks and the warmup file add to the export."""
        return round(sum(self.timings.get(k, 0.0) for k in VERIFICATION_STEPS), 3)


@contextlib.contextmanager
def _timed(timings: dict, step: str):
    start = time.perf_counter()
    yield
    timings[step] = round(time.perf_counter() - start, 3)


def build_task(options: ExportOptions, checkpoint: Checkpoint, max_length: int = 512):
    from export._task_parity import build_token_task
    from signatures import TASKS, FeatureExtraction, QuestionAnswering, TextClassification, TokenClassification

    if options.task not in TASKS:
        raise ExportError(f"--task {options.task!r} is not supported; choose one of {', '.join(TASKS)}")
    if options.task in (TokenClassification.name, QuestionAnswering.name):
        return build_token_task(options, checkpoint, max_length)
    if options.task == FeatureExtraction.name:
        st = checkpoint.sentence_transformers
        return FeatureExtraction(pooling=options.pooling or st.get("pooling", "mean"),
                                 normalize=st.get("normalize", True) if options.normalize is None else options.normalize)
    return TextClassification.from_config(checkpoint.config)


def load_tf_model(checkpoint: Checkpoint, task):
    """The TF model for the task, converted from PyTorch weights when that is what the checkpoint has.

    Missing weights are an error: exporting a randomly initialised head would
    serve nonsense without a warning anyone reads.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import transformers

    auto_class = getattr(transformers, task.auto_class)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model, info = auto_class.from_pretrained(checkpoint.path, from_pt=checkpoint.from_pt,
                                                 local_files_only=True, output_loading_info=True)
    except (OSError, ValueError, ImportError) as exc:
        raise ExportError(f"--model {checkpoint.path}: cannot load {task.auto_class} weights: {exc}") from exc
    finally:
        transformers.logging.set_verbosity(verbosity)
    missing = [k for k in info.get("missing_keys", []) if "pooler" not in k]
    if missing:
        raise ExportError(f"--model {checkpoint.path}: the checkpoint has no weights for {missing[:5]} "
                          f"(task {task.name!r} needs them); is it a {task.name} checkpoint?")
    return model


def _tokenizer(options: ExportOptions, checkpoint: Checkpoint, max_length: int):
    from signatures import WordPieceTokenizer, architecture_for

    s = checkpoint.tokenizer_settings
    try:
        return WordPieceTokenizer(str(s.vocab_file), lower_case=s.lower_case, strip_accents=s.strip_accents,
                                  max_length=max_length, kind=options.tokenizer, cls_token=s.cls_token,
                                  sep_token=s.sep_token, unk_token=s.unk_token, pad_token=s.pad_token,
                                  uses_token_type_ids=architecture_for(checkpoint.config.model_type).uses_token_type_ids)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc


def _check_options(options: ExportOptions, checkpoint: Checkpoint) -> int:
    from signatures import DEFAULT_SIGNATURE_CHOICES, TOKENIZER_KINDS

    if not options.name or "/" in options.name or options.name.startswith("."):
        raise ExportError(f"--name {options.name!r}: must be a plain directory name")
    if options.tokenizer not in TOKENIZER_KINDS:
        raise ExportError(f"--tokenizer {options.tokenizer!r}: choose one of {', '.join(TOKENIZER_KINDS)}")
    if options.default_signature not in DEFAULT_SIGNATURE_CHOICES:
        raise ExportError(f"--default-signature {options.default_signature!r}: choose one of "
                          f"{', '.join(DEFAULT_SIGNATURE_CHOICES)}")
    if options.version is not None and options.version < 1:
        raise ExportError(f"--version {options.version}: versions are positive integers")
    limit = getattr(checkpoint.config, "max_position_embeddings", 512)
    max_length = options.max_length or checkpoint.default_max_length()
    if options.task == "question-answering" and options.max_length is None:
        max_length = min(max_length, 384)  # the question-answering pipeline's max_seq_len
    for flag, value, task in (("--aggregation-strategy", options.aggregation_strategy, "token-classification"),
                              ("--doc-stride", options.doc_stride, "question-answering"),
                              ("--max-answer-length", options.max_answer_length, "question-answering")):
        if value is not None and options.task != task:
            raise ExportError(f"{flag} applies to --task {task} only, not {options.task}")
    if not 3 <= max_length <= limit:
        raise ExportError(f"--max-length {max_length}: must be between 3 and the model's "
                          f"max_position_embeddings ({limit})")
    if not (options.max_error > 0 and options.max_error == options.max_error):
        raise ExportError(f"--max-error {options.max_error}: must be a positive number such as 1e-5")
    check_records_option(options.warmup_records)
    for flag, given in (("--parity-corpus", options.parity_corpus is not None),
                        ("--strict-tokenizer", options.strict_tokenizer)):
        if given and not options.verify:
            raise ExportError(f"{flag} needs the parity checks, which --no-verify turns off; drop one of them")
    if options.warmup_records is not None and not options.warmup:
        raise ExportError(f"--warmup-records {options.warmup_records} with --no-warmup: drop one of them")
    parse_target(options.target_serving or default_target())
    return max_length


def export_model(options: ExportOptions, log=print) -> ExportResult:
    """Export one checkpoint, verify it, publish it.

    Raises ExportError with a one-line reason on bad input, VerificationError
    when the artifact fails a check; either way nothing is left under
    `models/NAME/` (and `models/NAME` itself goes if this export created it).
    """
    import tensorflow as tf

    from signatures import ServingModule, architecture_for

    timings: dict[str, float] = {}
    start = time.perf_counter()
    checkpoint = Checkpoint.open(options.model)
    max_length = _check_options(options, checkpoint)
    corpus = None
    if options.verify and options.parity_corpus is not None:
        from export._tokenizer_parity import read_corpus

        corpus = read_corpus(options.parity_corpus)
    prefetch_op_sets()  # an `import tensorflow` in a subprocess: runs while the model loads
    output_dir = Path(options.output_dir)
    base = output_dir / options.name
    base_existed = base.exists()
    version = options.version or next_version(base)
    target = base / str(version)
    if target.exists():
        raise ExportError(f"{target} already exists; pick another --version or leave it out to take the next free one")

    task = build_task(options, checkpoint, max_length)
    architecture = architecture_for(checkpoint.config.model_type)
    with _timed(timings, "load"):
        model = load_tf_model(checkpoint, task)
        tokenizer = _tokenizer(options, checkpoint, max_length)
        module = ServingModule(model, tokenizer, task, architecture,
                               hidden_states=options.output_hidden_states, attentions=options.output_attentions)
    log(f"exporting {checkpoint.path} ({checkpoint.config.model_type}, {checkpoint.weights} weights) "
        f"as {task.name} -> {target}")
    try:
        with staging(output_dir, options.name) as staged:
            with _timed(timings, "save"):
                tf.saved_model.save(module, str(staged), signatures=module.signatures(options.default_signature))
            signatures = read_signatures(staged)
            card = _verify_and_describe(options, checkpoint, task, architecture, model, module, staged, signatures,
                                        max_length, version, corpus, timings, start, log)
            size = directory_size(staged)
            publish(staged, target)
    except BaseException:
        if not base_existed and base.is_dir() and not any(base.iterdir()):
            base.rmdir()
        raise
    timings["total"] = round(time.perf_counter() - start, 3)
    logging.getLogger(__name__).info("exported %s in %.1fs", target, timings["total"])
    return ExportResult(path=target, version=version, signatures=signatures, size_bytes=size, timings=timings,
                        report=card)


def _verify_and_describe(options, checkpoint, task, architecture, model, module, staged: Path, signatures: dict,
                         max_length: int, version: int, corpus, timings: dict, start: float, log) -> dict:
    """Parity, tokenizer parity, op check, warmup file and model card, into the staged version."""
    from datetime import datetime, timezone

    from export._opcheck import check_ops
    from export._parity import format_parity, numeric_parity
    from export._report import package_versions, write_report
    from export._tokenizer_parity import format_tokenizer_parity, hf_tokenizer, tokenizer_parity
    from export._warmup import read_warmup, replay, write_warmup
    from protocol import WARMUP_DIR, WARMUP_FILE

    nothing = f"nothing was written to {Path(options.output_dir) / options.name}"
    parity = tokens = loaded = tasks = None
    try:
        if options.verify:
            with _timed(timings, "parity"):
                report = numeric_parity(model, module, task, checkpoint, staged, max_error=options.max_error,
                                        uses_token_type_ids=architecture.uses_token_type_ids,
                                        attentions=options.output_attentions)
                parity, loaded = report.as_dict(), report.loaded
            log(format_parity(parity))
            if not report.ok:
                raise VerificationError(f"numeric parity failed: {report.first_failure} (figures above); {nothing}")
            with _timed(timings, "tokenizer_parity"):
                tokens = tokenizer_parity(module.tokenizer, hf_tokenizer(checkpoint.path), max_length=max_length,
                                          extra=corpus).as_dict()
            log(format_tokenizer_parity(tokens, options.strict_tokenizer))
            if tokens["mismatches"] and options.strict_tokenizer:
                raise VerificationError(f"tokenizer parity failed (--strict-tokenizer): {tokens['mismatches']} "
                                        f"of {tokens['texts']} texts tokenize differently from the checkpoint's "
                                        f"fast tokenizer (shown above); {nothing}")
            if getattr(task, "pipeline_parity", False):
                tasks = _pipeline_parity(task, checkpoint, loaded, module.tokenizer, max_length, corpus, timings, log)
                if tasks is not None and not tasks["ok"]:
                    raise VerificationError(f"pipeline parity failed: {tasks['mismatches']} of {tasks['texts']} "
                                            f"inputs differ from the Hugging Face pipeline, max score error "
                                            f"{tasks['max_score_error']:.2e} (shown above); {nothing}")
        target_serving = options.target_serving or default_target()
        with _timed(timings, "op_check"):
            ops = check_ops(staged, target_serving, tokenizer=options.tokenizer)
        log(ops.summary())
        if not ops.ok:
            raise VerificationError(f"op check failed: {ops.error()}; {nothing}")
        warmup = None
        if options.warmup:
            with _timed(timings, "warmup"):
                warmup = write_warmup(staged, options.name, signatures, checkpoint.tokenizer_settings.vocab_file,
                                      max_length, options.warmup_records)
                if loaded is not None:  # replay one request per signature, as TF Serving does at load
                    warmup["replayed"] = replay(loaded, read_warmup(staged))
            log(f"warmup: {warmup['records']} records in {WARMUP_DIR}/{WARMUP_FILE}"
                + (f" ({warmup['replayed']} replayed on the SavedModel)" if "replayed" in warmup else ""))
    finally:
        if loaded is not None:
            loaded.close()
    steps = {k: timings[k] for k in VERIFICATION_STEPS if k in timings}
    log(f"verification added {sum(steps.values()):.1f}s (" + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items())
        + ")")
    variables = staged / "variables"
    sizes = {"saved_model_pb_bytes": (staged / "saved_model.pb").stat().st_size,
             "variables_bytes": directory_size(variables) if variables.is_dir() else 0,
             "assets_bytes": directory_size(staged / "assets") if (staged / "assets").is_dir() else 0,
             "warmup_bytes": warmup["bytes"] if warmup else 0}
    sizes["total_bytes"] = directory_size(staged)
    card = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": options.name, "version": version},
        "source": {"path": str(Path(checkpoint.path).resolve()), "model_type": checkpoint.config.model_type,
                   "weights": checkpoint.weights, "architectures": getattr(checkpoint.config, "architectures", None)},
        "task": task.describe(),
        "labels": dict(enumerate(task.labels)) if getattr(task, "labels", None) else None,
        "options": {"max_length": max_length, "tokenizer": options.tokenizer,
                    "default_signature": options.default_signature,
                    "output_hidden_states": options.output_hidden_states,
                    "output_attentions": options.output_attentions, "verify": options.verify,
                    **{k: getattr(options, k) for k in ("aggregation_strategy", "doc_stride", "max_answer_length")
                       if getattr(options, k) is not None},
                    "max_error": options.max_error},
        "versions": package_versions(),
        "target_serving": target_serving,
        "signatures": signatures,
        "ops": ops.as_dict(),
        "parity": parity,
        "tokenizer_parity": tokens,
        "pipeline_parity": tasks,
        "strict_tokenizer": options.strict_tokenizer,
        "warmup": warmup,
        "sizes": sizes,
        "timings": {**timings, "verification": round(sum(steps.values()), 3),
                    "total": round(time.perf_counter() - start, 3)},
    }
    write_report(staged, card)
    return card


def _pipeline_parity(task, checkpoint, loaded, tokenizer, max_length: int, corpus, timings: dict, log) -> dict:
    """Token-level tasks: the exported `text` signature vs transformers.pipeline on the PyTorch weights."""
    from export._task_parity import format_task_parity, pipeline_parity
    from export._tokenizer_parity import CORPUS

    if not checkpoint.from_pt:
        log("pipeline parity: skipped (the checkpoint has TF weights, the pipeline reference runs PyTorch)")
        return None
    texts = None if corpus is None else [*CORPUS, *(("file", t) for t in corpus)]
    with _timed(timings, "pipeline_parity"):
        report = pipeline_parity(task, checkpoint, loaded, tokenizer, max_length=max_length, texts=texts).as_dict()
    log(format_task_parity(report))
    return report
