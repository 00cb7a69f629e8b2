"""`python -m clients predict|status|metadata`: the clients from a shell.

    python -m clients predict --model minilm --text "hello" --text "world"
    python -m clients predict --model minilm --grpc --input texts.txt --output out.jsonl
    python -m clients status --model minilm
    python -m clients metadata --model minilm --version 1

`--input` takes JSONL (`.jsonl`/`.ndjson`: one JSON object {input: value} or
one JSON string per line) or plain text (one text per line). The output has
one JSON line per input row, in input order: {"index": i, "outputs": {...}}
or {"index": i, "error": {"type", "code", "message"}}.

Exit status: 0 on success, 1 when the server (or some rows) failed (the
server's message is printed to stderr), 2 on a usage error.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

import numpy as np

from clients._config import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT
from clients._errors import ServingError
from protocol import DEFAULT_SIGNATURE, GRPC_PORT, REST_PORT

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clients",
                                     description="Call a TF Serving compatible server over REST or gRPC.")
    commands = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True, help="model name")
    common.add_argument("--grpc", action="store_true", help="use gRPC instead of REST")
    common.add_argument("--host", default="localhost", help="server host (default: localhost)")
    common.add_argument("--rest-port", type=int, default=REST_PORT, help=f"REST port (default: {REST_PORT})")
    common.add_argument("--grpc-port", type=int, default=GRPC_PORT, help=f"gRPC port (default: {GRPC_PORT})")
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per request (default: {DEFAULT_TIMEOUT})")
    which = common.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="model version (default: latest)")
    which.add_argument("--label", help="model version label")

    predict = commands.add_parser("predict", parents=[common], help="predict texts or JSONL rows")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text to predict (repeatable)")
    source.add_argument("--input", type=Path, help="JSONL file (.jsonl/.ndjson) or one text per line")
    predict.add_argument("--output", type=Path, help="write JSONL here (default: stdout)")
    predict.add_argument("--signature", default=DEFAULT_SIGNATURE,
                         help=f"signature name (default: {DEFAULT_SIGNATURE})")
    predict.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                         help=f"rows per request (default: {DEFAULT_BATCH_SIZE})")
    predict.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                         help=f"requests in flight (default: {DEFAULT_CONCURRENCY})")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")

    commands.add_parser("status", parents=[common], help="print the model's version states")
    commands.add_parser("metadata", parents=[common], help="print the model's signatures")
    return parser


def read_rows(path: Path) -> Any:
    """A file -> a list of texts, or a dict {input: list} for JSONL objects."""
    lines = [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix.lower() not in JSONL_SUFFIXES:
        return [line for line in lines if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not a JSON line ({exc}); use a .txt file for plain text") from None
    if all(isinstance(r, str) for r in rows):
        return rows
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: JSONL lines must be all strings or all objects {{input: value}}")
    names = set(rows[0]) if rows else set()
    for number, row in enumerate(rows, 1):
        if set(row) != names:
            raise ValueError(f"{path}: row {number} has inputs {sorted(row)}, the first row {sorted(names)}")
    return {name: [row[name] for row in rows] for name in sorted(names)}


def _jsonable(value: np.ndarray) -> Any:
    if value.dtype == object:
        return [_jsonable(v) for v in value] if value.ndim else _scalar(value[()])
    return value.tolist()


def _scalar(x: Any) -> Any:
    if isinstance(x, bytes):
        try:
            return x.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(x).decode("ascii")}
    if isinstance(x, np.ndarray):
        return _jsonable(x)
    return x


def write_result(result, out: TextIO) -> None:
    from clients._tasks import decode_task_rows

    decoded = decode_task_rows(result)  # token-level tasks: {"entities": [...]} / {"answer": {...}}
    for i in range(result.num_rows):
        if i in result.errors:
            err = result.errors[i]
            line = {"index": i, "error": {"type": type(err).__name__, "code": err.code, "message": err.message}}
        elif decoded:
            line = {"index": i, decoded[0]: decoded[1][i]}
        else:
            line = {"index": i, "outputs": {k: _jsonable(np.asarray(v[i])) for k, v in result.outputs.items()}}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")


def make_client(args):
    if args.grpc:
        from clients._grpc import GrpcClient
        return GrpcClient(f"{args.host}:{args.grpc_port}", timeout=args.timeout)
    from clients._rest import RestClient
    return RestClient(f"http://{args.host}:{args.rest_port}", timeout=args.timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        inputs = None
        if args.command == "predict":
            inputs = args.text if args.text else read_rows(args.input)
        with make_client(args) as client:
            if args.command == "status":
                print(json.dumps(client.status(args.model, version=args.version, label=args.label).to_dict(),
                                 indent=2))
                return 0
            if args.command == "metadata":
                meta = client.metadata(args.model, version=args.version, label=args.label)
                print(json.dumps(meta.to_dict(), indent=2))
                return 0
            result = client.predict_batched(
                args.model, inputs, batch_size=args.batch_size, concurrency=args.concurrency,
                signature_name=args.signature, version=args.version, label=args.label,
                on_error="return", progress=False if args.no_progress else None)
    except ServingError as exc:
        print(f"error: {type(exc).__name__} ({exc.code}): {exc.message}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            write_result(result, out)
    else:
        write_result(result, sys.stdout)
    if result.errors:
        first = min(result.errors)
        err = result.errors[first]
        print(f"error: {len(result.errors)} of {result.num_rows} rows failed; first: row {first}: "
              f"{type(err).__name__} ({err.code}): {err.message}", file=sys.stderr)
        return 1
    return 0
