"""Turn a Transformers checkpoint into a versioned TF Serving SavedModel.

>>> from export import ExportOptions, export_model
>>> export_model(ExportOptions(model="ckpt/", task="feature-extraction", name="minilm", output_dir="models"))
"""
from export._errors import ExportError
from export._exporter import ExportOptions, ExportResult, export_model
from export._layout import next_version, versions
from export._source import Checkpoint
from export._summary import format_signatures, read_signatures

__all__ = [
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "export_model",
    "next_version",
    "versions",
    "Checkpoint",
    "format_signatures",
    "read_signatures",
]
