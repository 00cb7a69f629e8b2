"""What `python -m server` prints: its own lines (versions loaded, ports,
warmup, errors), as `tensorflow_model_server` does, and TensorFlow's own log
lines only when asked for with `--log_tensorflow`.

TensorFlow's C++ runtime and the libraries under it (XLA's `cuInit` probe on a
machine without a GPU, absl's and MLIR's INFO lines) write straight to file
descriptor 2, below Python. So the server keeps the real stderr for itself and
hands descriptor 2 to a pipe whose reader drops those native log lines
(`2026-01-01 12:00:00.000000: E ...`, `I0000 00:00:...`) and passes on
everything else (a fatal error, a crash report). TensorFlow's Python logger
and library warnings are quietened the ordinary way.

>>> bool(NATIVE_LOG_LINE.match(b"I0000 00:00:1796217612.640054    8875 mlir_graph_optimization_pass.cc:437] x"))
True
>>> bool(NATIVE_LOG_LINE.match(b"2026-12-02 13:07:50,730 W server] Loading servable ..."))
False
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import warnings

__all__ = ["configure", "NATIVE_LOG_LINE"]

# TensorFlow's own format ("2026-12-02 13:10:07.159438: E file:line] ...") and
# absl's ("I0000 00:00:1796217007.251245    3661 file:line] ..."), levels I, W, E
# (F, fatal, is always passed on), and absl's notice about its own set-up.
NATIVE_LOG_LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] |[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)")

FORMAT = "%(asctime)s %(levelname).1s server] %(message)s"


def configure(tensorflow_logs: bool = False) -> None:
    """Set up the server's logging; without `tensorflow_logs`, TensorFlow stays quiet."""
    if not tensorflow_logs:
        _filter_native_stderr()
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
        for module in ("tensorflow", "tf_keras", "keras", "google.protobuf", "tensorflow_text"):
            warnings.filterwarnings("ignore", module=module)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT if not tensorflow_logs else
                                           "%(asctime)s %(levelname).1s %(name)s] %(message)s"))
    root = logging.getLogger("server" if not tensorflow_logs else None)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if not tensorflow_logs:
        root.propagate = False


def _filter_native_stderr() -> None:
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = open(os.dup(real), "w", buffering=1, encoding="utf-8", errors="backslashreplace")

    def pump():
        pending = b""
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not NATIVE_LOG_LINE.match(line))
            if kept:
                os.write(real, kept)
    threading.Thread(target=pump, name="native-stderr", daemon=True).start()
