"""`python -m gateway`: the command line.

    python -m gateway --upstream localhost:8500 --port 8000 --model minilm
    python -m gateway --model-config-file docker/config/models.config --host 0.0.0.0
    python -m gateway --model text-embedding-3-small=minilm      # an OpenAI model id for a served model

Exit status: 0 stopped by SIGTERM/SIGINT, 2 bad flags (one line naming the flag).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from gateway._app import Gateway, GatewayConfig
from gateway._models import models_config_names, parse_routes

__all__ = ["main", "parse_args"]

API_KEY_ENV = "GATEWAY_API_KEY"


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def _upstream(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (the model server's gRPC port), got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gateway",
        description="OpenAI-compatible embeddings API (POST /v1/embeddings, GET /v1/models) in front of "
                    "TF Serving or python -m server, over gRPC.")
    p.add_argument("--upstream", type=_upstream, default="localhost:8500", metavar="HOST:PORT",
                   help="the model server's gRPC address (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; "
                                                       "0.0.0.0 in a container)")
    p.add_argument("--port", type=_port, default=8000, help="HTTP port (default: %(default)s)")
    p.add_argument("--model", action="append", default=[], metavar="NAME | ID=NAME",
                   help="a model to serve (repeatable): its name on the model server, or ID=NAME to "
                        "answer to another model id (e.g. text-embedding-3-small=minilm)")
    p.add_argument("--model-config-file", type=Path, metavar="PATH",
                   help="serve every model of a TF Serving models.config (model_config_list)")
    p.add_argument("--batch-size", type=_positive(int), default=64,
                   help="texts per request to the model server; longer input lists are split and sent "
                        "concurrently, order kept (default: %(default)s)")
    p.add_argument("--concurrency", type=_positive(int), default=4,
                   help="requests in flight to the model server per embeddings request (default: %(default)s)")
    p.add_argument("--timeout", type=_positive(float), default=60.0,
                   help="seconds an upstream call may take (default: %(default)s)")
    p.add_argument("--retries", type=int, default=1, choices=range(0, 11), metavar="N",
                   help="retries of a batch after a transient upstream failure (default: %(default)s)")
    p.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                   help=f"require `Authorization: Bearer KEY` (default: ${API_KEY_ENV}, unset: no key)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--no-access-log", dest="access_log", action="store_false",
                   help="do not log one line per request")
    return p


def parse_args(argv: list[str] | None = None) -> GatewayConfig:
    """Flags -> `GatewayConfig`; bad flags exit 2 with one line naming the flag."""
    parser = build_parser()
    args = parser.parse_args(argv)
    specs = list(args.model)
    try:
        if args.model_config_file is not None:
            specs += models_config_names(args.model_config_file)
        routes = parse_routes(specs)
    except ValueError as exc:
        parser.error(str(exc))
    if not routes:
        parser.error("no models to serve: give --model NAME (repeatable) or --model-config-file models.config")
    return GatewayConfig(routes=routes, upstream=args.upstream, host=args.host, port=args.port,
                         batch_size=args.batch_size, concurrency=args.concurrency, timeout=args.timeout,
                         retries=args.retries, api_key=args.api_key or None, access_log=args.access_log)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    level = build_parser().parse_known_args(argv)[0].log_level
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(Gateway(config).serve())
    except OSError as exc:  # the port is taken, the address is not ours, ...
        print(f"python -m gateway: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    return 0
