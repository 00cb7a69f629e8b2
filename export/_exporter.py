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

from export._errors import ExportError
from export._layout import next_version, publish, staging
from export._source import Checkpoint
from export._summary import directory_size, read_signatures

__all__ = ["ExportOptions", "ExportResult", "export_model", "load_tf_model", "build_task"]


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


@dataclass
class ExportResult:
    path: Path
    version: int
    signatures: dict[str, dict]
    size_bytes: int
    timings: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _timed(timings: dict, step: str):
    start = time.perf_counter()
    yield
    timings[step] = round(time.perf_counter() - start, 3)


def build_task(options: ExportOptions, checkpoint: Checkpoint):
    from signatures import TASKS, FeatureExtraction, TextClassification

    if options.task not in TASKS:
        raise ExportError(f"--task {options.task!r} is not supported; choose one of {', '.join(TASKS)}")
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
    from signatures import WordPieceTokenizer

    s = checkpoint.tokenizer_settings
    try:
        return WordPieceTokenizer(str(s.vocab_file), lower_case=s.lower_case, strip_accents=s.strip_accents,
                                  max_length=max_length, kind=options.tokenizer, cls_token=s.cls_token,
                                  sep_token=s.sep_token, unk_token=s.unk_token, pad_token=s.pad_token)
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
    if not 3 <= max_length <= limit:
        raise ExportError(f"--max-length {max_length}: must be between 3 and the model's "
                          f"max_position_embeddings ({limit})")
    return max_length


def export_model(options: ExportOptions, log=print) -> ExportResult:
    """Export one checkpoint; raises ExportError with a one-line reason on bad input."""
    import tensorflow as tf

    from signatures import ServingModule, architecture_for

    timings: dict[str, float] = {}
    start = time.perf_counter()
    checkpoint = Checkpoint.open(options.model)
    max_length = _check_options(options, checkpoint)
    output_dir = Path(options.output_dir)
    base = output_dir / options.name
    version = options.version or next_version(base)
    target = base / str(version)
    if target.exists():
        raise ExportError(f"{target} already exists; pick another --version or leave it out to take the next free one")

    task = build_task(options, checkpoint)
    with _timed(timings, "load"):
        model = load_tf_model(checkpoint, task)
        tokenizer = _tokenizer(options, checkpoint, max_length)
        module = ServingModule(model, tokenizer, task, architecture_for(checkpoint.config.model_type),
                               hidden_states=options.output_hidden_states, attentions=options.output_attentions)
    log(f"exporting {checkpoint.path} ({checkpoint.config.model_type}, {checkpoint.weights} weights) "
        f"as {task.name} -> {target}")
    with staging(output_dir, options.name) as staged:
        with _timed(timings, "save"):
            tf.saved_model.save(module, str(staged), signatures=module.signatures(options.default_signature))
        signatures = read_signatures(staged)
        size = directory_size(staged)
        publish(staged, target)
    timings["total"] = round(time.perf_counter() - start, 3)
    logging.getLogger(__name__).info("exported %s in %.1fs", target, timings["total"])
    return ExportResult(path=target, version=version, signatures=signatures, size_bytes=size, timings=timings)
