"""`ServerProcess`: run `python -m server` as a child process (tests, clients' tests, bench, docs).

Stable API (others depend on it):

    ServerProcess(flags=(), models=None, *, timeout=120.0, env=None, cwd=None,
                  python=sys.executable, host="127.0.0.1")
        flags    tensorflow_model_server flags, e.g. ["--model_name=m", "--model_base_path=/m"].
                 --port and --rest_api_port are added on free ports unless given
                 (--rest_api_port=0 turns REST off).
        models   names to wait for until each has an AVAILABLE version; default: the
                 --model_name when --model_base_path is given, else none.
        timeout  seconds to wait for start-up; RuntimeError (with the server's stderr) after.
    .start() / .stop()   or use it as a context manager. stop() sends SIGTERM and raises
                 RuntimeError unless the server exits with code 0 (check_exit=False to skip).
    .rest_url     "http://127.0.0.1:PORT" (None when REST is off)
    .grpc_target  "127.0.0.1:PORT"
    .grpc_port, .rest_port, .pid, .returncode, .stdout, .stderr (text captured so far)
    .wait_available(model, version=None, timeout=60)   block until that version is AVAILABLE
    .model_status(model)   [{"version": "1", "state": "AVAILABLE", ...}] over REST (or gRPC)

>>> with ServerProcess(["--model_name=m", "--model_base_path=/models/m"]) as srv:   # doctest: +SKIP
...     requests.post(srv.rest_url + "/v1/models/m:predict", json={"instances": [1.0]}).json()
{'predictions': [2.5]}
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from ._env import set_defaults as set_env_defaults

__all__ = ["ServerProcess", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _flag(flags, name):
    for f in flags:
        if f.startswith(f"--{name}="):
            return f.split("=", 1)[1]
    return None


class ServerProcess:
    """A `python -m server` child process on free ports (see the module docstring)."""

    def __init__(self, flags=(), models=None, *, timeout: float = 120.0, env=None, cwd=None,
                 python: str = sys.executable, host: str = "127.0.0.1"):
        self.flags = list(flags)
        self.host = host
        self.timeout = timeout
        self.cwd = cwd
        self.python = python
        if _flag(self.flags, "host") is None:
            self.flags.append(f"--host={host}")
        self._given = list(self.flags)
        self._auto_ports = _flag(self.flags, "port") is None or _flag(self.flags, "rest_api_port") is None
        self._pick_ports()
        if models is None:
            name = _flag(self.flags, "model_name") or "default"
            models = [name] if _flag(self.flags, "model_base_path") else []
        self.models = list(models)
        self.env = dict(os.environ if env is None else env)
        set_env_defaults(self.env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.process: subprocess.Popen | None = None
        self.returncode: int | None = None
        self._out = self._err = None

    def _pick_ports(self) -> None:
        self.flags = list(self._given)
        port = _flag(self.flags, "port")
        rest = _flag(self.flags, "rest_api_port")
        self.grpc_port = int(port) if port is not None else free_port(self.host)
        self.rest_port = int(rest) if rest is not None else free_port(self.host)
        while self.rest_port and self.rest_port == self.grpc_port:
            self.rest_port = free_port(self.host)
        if port is None:
            self.flags.append(f"--port={self.grpc_port}")
        if rest is None:
            self.flags.append(f"--rest_api_port={self.rest_port}")

    # -- addresses ------------------------------------------------------------
    @property
    def rest_url(self) -> str | None:
        return f"http://{self.host}:{self.rest_port}" if self.rest_port else None

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def stdout(self) -> str:
        return self._read(self._out)

    @property
    def stderr(self) -> str:
        return self._read(self._err)

    @staticmethod
    def _read(f) -> str:
        if f is None:
            return ""
        f.flush()
        with open(f.name, encoding="utf-8", errors="replace") as r:
            return r.read()

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> "ServerProcess":
        """Start the server and wait for its models; RuntimeError (with stderr) if it fails."""
        for attempt in range(3):
            try:
                return self._start_once()
            except RuntimeError:
                # A free port can be taken by someone else before the server binds it.
                taken = "in use" in self.stderr or "Address already in use" in self.stderr
                if not (taken and self._auto_ports and attempt < 2):
                    raise
                self._pick_ports()
        raise AssertionError("unreachable")

    def _start_once(self) -> "ServerProcess":
        self._out = tempfile.NamedTemporaryFile("w+b", prefix="server-out-", suffix=".log")
        self._err = tempfile.NamedTemporaryFile("w+b", prefix="server-err-", suffix=".log")
        cmd = [self.python, "-m", "server", *self.flags]
        cwd = self.cwd or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.process = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, cwd=cwd, env=self.env)
        deadline = time.monotonic() + self.timeout
        try:
            self._wait_ready(deadline)
            for model in self.models:
                self.wait_available(model, timeout=max(0.0, deadline - time.monotonic()))
        except BaseException:
            self._kill()
            raise
        return self

    def _fail(self, why: str):
        raise RuntimeError(f"server {why}: {' '.join(self.flags)}\n--- stderr ---\n{self.stderr[-8000:]}"
                           f"\n--- stdout ---\n{self.stdout[-2000:]}")

    def _wait_ready(self, deadline: float) -> None:
        # The ports open only after the initial models loaded (as in TF Serving).
        while True:
            if self.process.poll() is not None:
                self.returncode = self.process.returncode
                self._fail(f"exited with code {self.returncode} during start-up")
            if "Running gRPC ModelServer" in self.stdout and (
                    not self.rest_port or "Exporting HTTP/REST API" in self.stdout):
                return
            if time.monotonic() > deadline:
                self._fail(f"did not start within {self.timeout}s")
            time.sleep(0.05)

    def model_status(self, model: str) -> list[dict]:
        """The model's version statuses as TF Serving's REST API returns them."""
        if self.rest_url:
            try:
                with urllib.request.urlopen(f"{self.rest_url}/v1/models/{model}", timeout=10) as r:
                    return json.loads(r.read())["model_version_status"]
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return []
                raise
        import grpc
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
        with grpc.insecure_channel(self.grpc_target) as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            req = get_model_status_pb2.GetModelStatusRequest()
            req.model_spec.name = model
            try:
                resp = stub.GetModelStatus(req, timeout=10)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    return []
                raise
            return json_format.MessageToDict(resp, preserving_proto_field_name=True)["model_version_status"]

    def wait_available(self, model: str, version: int | None = None, timeout: float = 60.0) -> None:
        """Block until `model` (or that `version` of it) is AVAILABLE."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self.returncode = self.process.returncode
                self._fail(f"exited with code {self.returncode} while waiting for model {model}")
            states = self.model_status(model)
            if any(s["state"] == "AVAILABLE" and (version is None or int(s["version"]) == version)
                   for s in states):
                return
            if time.monotonic() > deadline:
                self._fail(f"model {model} version {version or 'any'} not AVAILABLE after {timeout}s "
                           f"(status: {states})")
            time.sleep(0.1)

    def stop(self, check_exit: bool = True, timeout: float = 60.0) -> int:
        """SIGTERM, wait, and (by default) insist on exit code 0."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                self._fail(f"did not exit within {timeout}s of SIGTERM")
        self.returncode = self.process.returncode
        if check_exit and self.returncode != 0:
            self._fail(f"exited with code {self.returncode} after SIGTERM (expected 0)")
        return self.returncode

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process is not None:
            self.returncode = self.process.returncode

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(check_exit=exc_type is None)
