"""`python -m export`: the command line of the export.

    python -m export --model DIR --task feature-extraction --name minilm --output-dir models
"""
from __future__ import annotations

import argparse
import os
import sys

from export._errors import ExportError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from signatures import DEFAULT_SIGNATURE_CHOICES, POOLINGS, TASKS, TOKENIZER_KINDS

    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a Transformers checkpoint as a TF Serving SavedModel (models/NAME/VERSION/) "
                    "with the tokenizer inside.")
    p.add_argument("--model", required=True, help="checkpoint directory (config.json, weights, vocab.txt)")
    p.add_argument("--task", default="feature-extraction", choices=sorted(TASKS))
    p.add_argument("--name", required=True, help="model name: the directory under --output-dir")
    p.add_argument("--output-dir", default="models", help="model base directory (default: models)")
    p.add_argument("--version", type=int, help="version number (default: the next free one)")
    p.add_argument("--max-length", type=int,
                   help="truncate to this many tokens, special tokens included (default: the checkpoint's)")
    p.add_argument("--tokenizer", default="fast", choices=TOKENIZER_KINDS,
                   help="fast: FastWordpiece ops (TF Serving >= 2.10); classic: BertTokenizer ops (>= 2.2)")
    p.add_argument("--default-signature", default="text", choices=DEFAULT_SIGNATURE_CHOICES,
                   help="which signature is also serving_default (tokens: for clients of Transformers' own export)")
    p.add_argument("--output-hidden-states", action="store_true", help="add a stacked hidden_states output")
    p.add_argument("--output-attentions", action="store_true", help="add a stacked attentions output")
    p.add_argument("--pooling", choices=POOLINGS, help="feature-extraction pooling (default: the checkpoint's, else mean)")
    p.add_argument("--no-normalize", dest="normalize", action="store_false", default=None,
                   help="feature-extraction: do not L2-normalise the embedding")
    return p


def _export(argv: list[str]) -> int:
    from export._exporter import ExportOptions, export_model
    from export._summary import format_signatures, human_size

    args = build_parser().parse_args(argv)
    options = ExportOptions(**vars(args))
    result = export_model(options)
    print(f"\nwrote {result.path}  ({human_size(result.size_bytes)}, {result.timings['total']:.1f}s: "
          + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items() if k != "total") + ")\n")
    print(format_signatures(result.signatures))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return _export(argv)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
