"""Test helper for the clients' tests: run the real `python -m server` on chosen ports.

Unlike a server on any free ports, this one can be stopped and started again
on the same ports (the restart-mid-run test needs that). Output goes to a log
file whose tail is shown when the server fails to come up.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClientsTestServer:
    """`python -m server` with the given flags on fixed free ports; a context manager."""

    def __init__(self, *flags: str, models: tuple[str, ...], startup_timeout: float = 240.0):
        self.flags = list(flags)
        self.models = models
        self.startup_timeout = startup_timeout
        self.grpc_port = free_port()
        self.rest_port = free_port()
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.log_path = Path(tempfile.mkstemp(prefix="clients-server-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> "ClientsTestServer":
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1", PYTHONUNBUFFERED="1")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", f"--port={self.grpc_port}",
             f"--rest_api_port={self.rest_port}", *self.flags],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        from clients import RestClient, ServingError

        deadline = time.monotonic() + self.startup_timeout
        with RestClient(self.rest_url, timeout=2) as client:
            for model in self.models:
                while True:
                    if self.process.poll() is not None:
                        raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
                    try:
                        if client.status(model).available:
                            break
                    except ServingError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"server not ready within {self.startup_timeout} s:\n{self.log_tail()}")
                    time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> "ClientsTestServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def model_config(models: dict[str, Path], path: Path) -> Path:
    """A ModelServerConfig text proto serving `models` ({name: base path})."""
    entries = "".join(f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n'
                      for name, base in models.items())
    path.write_text("model_config_list {\n" + entries + "}\n")
    return path
