"""Turn a Transformers checkpoint into a versioned TF Serving SavedModel, verified.

>>> from export import ExportOptions, export_model
>>> result = export_model(ExportOptions(model="ckpt/", task="feature-extraction", name="minilm", output_dir="models"))
>>> result.report["parity"]["ok"], result.verification_seconds

Every export checks numeric parity (PyTorch vs TF vs the reloaded SavedModel),
tokenizer parity, the ops against the target tensorflow/serving release, and
writes warmup requests and a model card (`assets.extra/`).
"""
from export._errors import ExportError, VerificationError
from export._exporter import VERIFICATION_STEPS, ExportOptions, ExportResult, export_model
from export._layout import next_version, versions
from export._opcheck import OpCheck, check_ops, collect_ops, default_target, op_sets
from export._parity import ParityReport, format_parity, numeric_parity
from export._report import read_report, render
from export._source import Checkpoint
from export._summary import format_signatures, read_signatures
from export._tokenizer_parity import CORPUS, format_tokenizer_parity, tokenizer_parity
from export._warmup import read_warmup, replay, warmup_requests, write_warmup

__all__ = [
    "ExportError",
    "VerificationError",
    "ExportOptions",
    "ExportResult",
    "VERIFICATION_STEPS",
    "export_model",
    "next_version",
    "versions",
    "Checkpoint",
    "format_signatures",
    "read_signatures",
    "OpCheck",
    "check_ops",
    "collect_ops",
    "default_target",
    "op_sets",
    "ParityReport",
    "numeric_parity",
    "format_parity",
    "CORPUS",
    "tokenizer_parity",
    "format_tokenizer_parity",
    "write_warmup",
    "read_warmup",
    "warmup_requests",
    "replay",
    "read_report",
    "render",
]
