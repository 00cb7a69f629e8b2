"""`GatewayProcess`: run `python -m gateway` as a child process on a free port (tests, bench).

>>> with GatewayProcess(["--upstream", srv.grpc_target, "--model", "minilm"]) as gw:   # doctest: +SKIP
...     OpenAI(base_url=gw.base_url, api_key="unused").embeddings.create(model="minilm", input="hi")
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["GatewayProcess"]

#: the line `python -m gateway` logs once it listens
READY_LINE = "OpenAI embeddings API on"


class GatewayProcess:
    """`python -m gateway ARGS --host 127.0.0.1 --port FREE`; `.base_url` is what `OpenAI(base_url=...)` takes."""

    def __init__(self, args=(), *, timeout: float = 120.0, env=None, python: str = sys.executable):
        self.args = list(args)
        self.host = "127.0.0.1"
        with socket.socket() as s:
            s.bind((self.host, 0))
            self.port = s.getsockname()[1]
        self.timeout = timeout
        self.python = python
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.process: subprocess.Popen | None = None
        self.returncode: int | None = None
        self._err = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def stderr(self) -> str:
        if self._err is None:
            return ""
        self._err.flush()
        with open(self._err.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def start(self) -> "GatewayProcess":
        """Start it and wait until it listens (not for the model server: it may be down on purpose)."""
        self._err = tempfile.NamedTemporaryFile("w+b", prefix="gateway-err-", suffix=".log")
        cmd = [self.python, "-m", "gateway", *self.args, "--host", self.host, "--port", str(self.port)]
        cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._err, cwd=cwd, env=self.env)
        deadline = time.monotonic() + self.timeout
        while READY_LINE not in self.stderr:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.returncode = self.process.wait()
                raise RuntimeError(f"gateway did not start ({' '.join(cmd)}):\n{self.stderr[-4000:]}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait; returns the exit code."""
        if self.process is not None and self.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.returncode = self.process.wait()
        return self.returncode

    def __enter__(self) -> "GatewayProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
