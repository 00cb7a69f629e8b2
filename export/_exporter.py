"""Transformers checkpoint -> `models/NAME/VERSION/` SavedModel.

>>> result = export_model(ExportOptions(model="path/to/all-MiniLM-L6-v2", task="feature-extraction",
...                                     name="minilm", output_dir="models"))
>>> result.path
PosixPath('models/minilm/1')
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from export._errors import ExportError
from export._layout import next_version, publish, staging, version_dir
from export._opcheck import default_target, parse_target, prefetch_op_sets
from export._report import model_card, write_report
from export._source import Checkpoint
from export._summary import directory_size, read_signatures
from export._verification import VERIFICATION_STEPS, Staged, timed, verify
from export._warmup import check_records_option
from server._env import set_defaults as set_env_defaults

__all__ = ["ExportOptions", "ExportResult", "export_model", "load_tf_model", "build_task", "VERIFICATION_STEPS"]


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
    length_buckets: bool = True  # string signatures run length-ordered sub-batches (signatures/_buckets.py)
    bucket_tokens: int | None = None  # padded tokens per sub-batch; None: signatures' DEFAULT_MAX_TOKENS
    bucket_min_fill: float | None = None  # plain path at this real/padded fill; None: DEFAULT_MIN_FILL
    verify_bf16: bool = False  # accuracy under TF Serving's --mixed_precision=bfloat16 (export/_bf16_check.py)
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
    set_env_defaults()  # before transformers is imported
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


def bucket_policy(options: ExportOptions):
    """The length-bucket policy the options ask for, or None (signatures/_buckets.py)."""
    from signatures import BucketPolicy

    if not options.length_buckets:
        return None
    given = {k: v for k, v in (("max_tokens", options.bucket_tokens), ("min_fill", options.bucket_min_fill))
             if v is not None}
    return BucketPolicy(**given)


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
    limit = checkpoint.max_positions()
    max_length = options.max_length or checkpoint.default_max_length()
    if options.task == "question-answering" and options.max_length is None:
        max_length = min(max_length, 384)  # the question-answering pipeline's max_seq_len
    for flag, value, task in (("--aggregation-strategy", options.aggregation_strategy, "token-classification"),
                              ("--doc-stride", options.doc_stride, "question-answering"),
                              ("--max-answer-length", options.max_answer_length, "question-answering")):
        if value is not None and options.task != task:
            raise ExportError(f"{flag} applies to --task {task} only, not {options.task}")
    if not 3 <= max_length <= limit:
        raise ExportError(f"--max-length {max_length}: must be between 3 and the {limit} positions the model "
                          "embeds (max_position_embeddings)")
    if not (options.max_error > 0 and options.max_error == options.max_error):
        raise ExportError(f"--max-error {options.max_error}: must be a positive number such as 1e-5")
    check_records_option(options.warmup_records)
    if options.bucket_tokens is not None and (options.bucket_tokens < 1 or not options.length_buckets):
        raise ExportError(f"--bucket-tokens {options.bucket_tokens}: needs length buckets on and a positive "
                          "number of padded tokens per sub-batch, such as 1024")
    if options.bucket_min_fill is not None and (not 0 <= options.bucket_min_fill <= 1 or not options.length_buckets):
        raise ExportError(f"--bucket-min-fill {options.bucket_min_fill}: needs length buckets on and a fraction "
                          "in [0, 1] (the share of a padded batch that real tokens fill), such as 0.75")
    for flag, given in (("--parity-corpus", options.parity_corpus is not None),
                        ("--verify-bf16", options.verify_bf16), ("--strict-tokenizer", options.strict_tokenizer)):
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
    target = version_dir(base, version)
    if target.exists():
        raise ExportError(f"{target} already exists; pick another --version or leave it out to take the next free one")

    task = build_task(options, checkpoint, max_length)
    architecture = architecture_for(checkpoint.config.model_type)
    with timed(timings, "load"):
        tokenizer = checkpoint.build_tokenizer(max_length, kind=options.tokenizer)  # bad files fail before the model loads
        model = load_tf_model(checkpoint, task)
        module = ServingModule(model, tokenizer, task, architecture,
                               hidden_states=options.output_hidden_states, attentions=options.output_attentions,
                               length_buckets=bucket_policy(options))
    log(f"exporting {checkpoint.path} ({checkpoint.config.model_type}, {checkpoint.weights} weights) "
        f"as {task.name} -> {target}")
    try:
        with staging(output_dir, options.name) as staged:
            with timed(timings, "save"):
                tf.saved_model.save(module, str(staged), signatures=module.signatures(options.default_signature))
            signatures = read_signatures(staged)
            work = Staged(options, checkpoint, task, model, module, staged, max_length)
            card = model_card(work, verify(work, corpus, timings, log), version=version, signatures=signatures,
                              timings=timings, started=start)
            write_report(staged, card)
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
