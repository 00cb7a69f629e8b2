"""`python -m export`: the command line of the export.

    python -m export --model DIR --task feature-extraction --name minilm --output-dir models
    python -m export --model DIR --task question-answering --name qa --doc-stride 128
    python -m export check models/minilm/1 [--target-serving 2.19.0]
    python -m export inspect models/minilm/1
    python -m export tfjs models/minilm/1 --output web/models/minilm [--quantize float16|uint16|uint8]

Exit status: 0 done, 1 a check failed (parity, ops, warmup), 2 bad input.
"""
from __future__ import annotations

import argparse
import sys

from export._errors import ExportError
from server._env import set_defaults as set_env_defaults

__all__ = ["main", "build_parser", "build_check_parser", "build_inspect_parser", "build_tfjs_parser"]

SUBCOMMANDS = ("check", "inspect", "tfjs")


def _target_help() -> str:
    from export._opcheck import default_target

    return (f"tensorflow/serving release the SavedModel must load in (default: the installed tensorflow, "
            f"{default_target()})")


def build_parser() -> argparse.ArgumentParser:
    from signatures import (AGGREGATIONS, DEFAULT_MAX_TOKENS, DEFAULT_MIN_FILL, DEFAULT_SIGNATURE_CHOICES,
                            POOLINGS, TASKS, TOKENIZER_KINDS)

    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a Transformers checkpoint as a TF Serving SavedModel (models/NAME/VERSION/) "
                    "with the tokenizer inside, verify it and publish it. "
                    "Also: python -m export check PATH | inspect PATH.")
    p.add_argument("--model", required=True, help="checkpoint directory (config.json, weights, vocab.txt)")
    p.add_argument("--task", default="feature-extraction", choices=sorted(TASKS))
    p.add_argument("--name", required=True, help="model name: the directory under --output-dir")
    p.add_argument("--output-dir", default="models", help="model base directory (default: models)")
    p.add_argument("--version", type=int, help="version number (default: the next free one)")
    p.add_argument("--max-length", type=int,
                   help="truncate to this many tokens, special tokens included (default: the checkpoint's)")
    p.add_argument("--tokenizer", default="fast", choices=TOKENIZER_KINDS,
                   help="fast: FastWordpiece op (TF Serving >= 2.10); classic: BertTokenizer ops (>= 2.2)")
    p.add_argument("--default-signature", default="text", choices=DEFAULT_SIGNATURE_CHOICES,
                   help="which signature is also serving_default (tokens: for clients of Transformers' own export)")
    p.add_argument("--output-hidden-states", action="store_true", help="add a stacked hidden_states output")
    p.add_argument("--output-attentions", action="store_true", help="add a stacked attentions output")
    p.add_argument("--pooling", choices=POOLINGS, help="feature-extraction pooling (default: the checkpoint's, else mean)")
    p.add_argument("--no-normalize", dest="normalize", action="store_false", default=None,
                   help="feature-extraction: do not L2-normalise the embedding")
    b = p.add_argument_group("length bucketing (string signatures)")
    b.add_argument("--no-length-buckets", dest="length_buckets", action="store_false",
                   help="run each batch through the encoder as one, padded to its longest row (default: "
                        "length-ordered sub-batches, each padded to its own longest row)")
    b.add_argument("--bucket-tokens", type=int, metavar="N",
                   help="padded tokens (rows x longest row) per sub-batch (default: the measured "
                        f"{DEFAULT_MAX_TOKENS})")
    b.add_argument("--bucket-min-fill", type=float, metavar="F",
                   help="run a batch as one when its real tokens fill at least this share of it padded "
                        f"(similar lengths; default: the measured {DEFAULT_MIN_FILL})")
    t = p.add_argument_group("token-classification and question-answering (default: the Hugging Face pipeline's)")
    t.add_argument("--aggregation-strategy", choices=AGGREGATIONS,
                   help="token-classification: how tokens become entities (default: simple)")
    t.add_argument("--doc-stride", type=int, metavar="N",
                   help="question-answering: tokens shared by consecutive windows of a long context "
                        "(default: min(max-length / 2, 128))")
    t.add_argument("--max-answer-length", type=int, metavar="N", help="question-answering: tokens (default: 15)")
    v = p.add_argument_group("verification (before anything is published)")
    v.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip numeric and tokenizer parity (the op check still runs)")
    v.add_argument("--max-error", type=float, default=1e-5,
                   help="largest max-abs error allowed between PyTorch, TF and the SavedModel (default: 1e-5)")
    v.add_argument("--parity-corpus", metavar="FILE",
                   help="more texts for the tokenizer parity check, one a line")
    v.add_argument("--strict-tokenizer", action="store_true",
                   help="fail when the in-graph tokenizer differs from the checkpoint's on any text")
    v.add_argument("--target-serving", metavar="X.Y.Z", help=_target_help())
    v.add_argument("--verify-bf16", action="store_true",
                   help="also run the SavedModel under --mixed_precision=bfloat16 (grappler's oneDNN bf16 "
                        "rewrite) and record its accuracy cost in the model card")
    w = p.add_argument_group("warmup (assets.extra/tf_serving_warmup_requests)")
    w.add_argument("--warmup-records", type=int, metavar="N",
                   help="number of warmup requests, 1-1000 (default: every signature at every warmup shape)")
    w.add_argument("--no-warmup", dest="warmup", action="store_false", help="write no warmup file")
    return p


def build_check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m export check",
                                description="Check that a SavedModel uses only ops the target tensorflow/serving "
                                            "release links (TensorFlow core + its tensorflow-text ops).")
    p.add_argument("path", metavar="PATH", help="SavedModel version directory, e.g. models/NAME/1")
    p.add_argument("--target-serving", metavar="X.Y.Z", help=_target_help())
    return p


def build_inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m export inspect",
                                description="Print an exported model's card (assets.extra/export_report.json) "
                                            "and its signatures.")
    p.add_argument("path", metavar="PATH", help="SavedModel version directory, e.g. models/NAME/1")
    return p


def build_tfjs_parser() -> argparse.ArgumentParser:
    from export._tfjs import QUANTIZATIONS

    p = argparse.ArgumentParser(prog="python -m export tfjs",
                                description="Convert an exported version to a TensorFlow.js graph model (4 MB "
                                            "weight shards, the tokenizer files for the page) with tensorflowjs's "
                                            "converter, and check it in Node against the SavedModel.")
    p.add_argument("path", metavar="PATH", help="SavedModel version directory, e.g. models/NAME/1")
    p.add_argument("--output", required=True, help="directory to write, e.g. web/models/NAME")
    p.add_argument("--quantize", default="float32", choices=QUANTIZATIONS,
                   help="weight quantization (default: float32, none)")
    p.add_argument("--signature", default="tokens",
                   help="signature to convert (default: tokens; TF.js has no tensorflow-text ops)")
    p.add_argument("--max-error", type=float, default=1e-4,
                   help="largest max-abs error allowed between TF.js (float32) and the SavedModel (default: 1e-4)")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip the check in Node")
    return p


def _tfjs(argv: list[str]) -> int:
    from export._tfjs import TfjsOptions, convert_to_tfjs, format_report

    args = build_tfjs_parser().parse_args(argv)
    report = convert_to_tfjs(TfjsOptions(**vars(args)))
    print(f"\nwrote {args.output}\n{format_report(report)}")
    return 0


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


def _check(argv: list[str]) -> int:
    from pathlib import Path

    from export._opcheck import check_ops

    args = build_check_parser().parse_args(argv)
    path = Path(args.path)
    if not path.exists():
        raise ExportError(f"check PATH {path}: no such directory")
    if not (path / "saved_model.pb").is_file():
        raise ExportError(f"check PATH {path}: no saved_model.pb (expected a SavedModel version directory "
                          "such as models/NAME/1)")
    from export._report import read_report

    card = read_report(path) or {}  # our own exports know their --tokenizer, for the suggested fix
    result = check_ops(path, args.target_serving, tokenizer=card.get("options", {}).get("tokenizer"))
    print(f"{path}: {result.summary()}")
    for note in result.notes:
        print(f"  note: {note}")
    if result.tf_text_ops:
        print(f"  tensorflow-text ops: {', '.join(result.tf_text_ops)}")
    if not result.ok:
        print(f"error: {result.error()}", file=sys.stderr)
        return 1
    return 0


def _inspect(argv: list[str]) -> int:
    from export._report import render

    args = build_inspect_parser().parse_args(argv)
    print(render(args.path))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    set_env_defaults()
    command = {"check": _check, "inspect": _inspect, "tfjs": _tfjs}.get(argv[0] if argv else "", _export)
    try:
        return command(argv[1:] if command is not _export else argv)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
