"""`docker compose up` for real: build both images, export, serve with tensorflow/serving.

Marked `docker`; skipped (with the reason) where no Docker engine is reachable
or the compose plugin is missing. Run them on a machine with Docker:

    .venv/bin/python -m pytest -m docker tests/test_docker_integration.py

The stack runs as its own compose project on free host ports, with the models
volume pointed at a temporary directory (a compose override), so the checkout's
models/ and a running `docker compose up` are left alone. The first run builds
the images and exports the real MiniLM (several minutes).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from server import free_port
from tests._docker import GPU_OVERRIDE, ROOT, get, parse_models_config, parse_monitoring, post, wait_for_version

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]

MINILM_DIM = 384


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"no Docker engine reachable (`docker info` failed: {info.stderr.strip()[:200]})"
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if compose.returncode != 0:
        return "the Docker Compose v2 plugin (`docker compose`) is not installed"
    return None


@pytest.fixture(scope="module")
def docker():
    reason = _docker_unavailable()
    if reason:
        pytest.skip(reason)


class Stack:
    def __init__(self, project: str, files: list[Path], env: dict[str, str]):
        self.project, self.files, self.env = project, files, env
        self.rest_url = f"http://127.0.0.1:{env['REST_PORT']}"
        self.grpc_target = f"127.0.0.1:{env['GRPC_PORT']}"

    def compose(self, *args: str, check: bool = True, timeout: float = 3000) -> subprocess.CompletedProcess:
        cmd = ["docker", "compose", "-p", self.project, "--project-directory", str(ROOT)]
        for f in self.files:
            cmd += ["-f", str(f)]
        done = subprocess.run([*cmd, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            logs = subprocess.run([*cmd, "logs", "--no-color", "--tail", "100"], cwd=ROOT, env=self.env,
                                  capture_output=True, text=True).stdout
            pytest.fail(f"docker compose {' '.join(args)} failed ({done.returncode}):\n{done.stderr}\n{logs}")
        return done

    def serving_health(self) -> str:
        ps = self.compose("ps", "--all", "--format", "json", "serving", check=False).stdout.strip()
        if not ps:
            return "missing"
        rows = json.loads(ps) if ps.startswith("[") else [json.loads(l) for l in ps.splitlines() if l.strip()]
        return rows[0].get("Health") or rows[0].get("State", "unknown")


@pytest.fixture(scope="module")
def stack(docker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compose")
    models = tmp / "models"
    models.mkdir()
    models.chmod(0o777)
    override = tmp / "compose.test.yaml"
    override.write_text(yaml.safe_dump({"services": {
        name: {"volumes": [{"type": "bind", "source": str(models), "target": "/models",
                            **({"read_only": True} if name == "serving" else {})}]}
        for name in ("export", "serving")}}))
    env = {**os.environ, "GRPC_PORT": str(free_port()), "REST_PORT": str(free_port()),
           "PROMETHEUS_PORT": str(free_port()), "GRAFANA_PORT": str(free_port()), "HOST_UID": str(os.getuid()), "HOST_GID": str(os.getgid())}
    s = Stack(f"tfst-{uuid.uuid4().hex[:8]}", [ROOT / "compose.yaml", override], env)
    s.models = models
    try:
        # (not `up --wait`: some Compose versions count the one-shot export's exit as a failure)
        s.compose("--profile", "monitoring", "up", "--build", "--detach")
        deadline = time.monotonic() + 1800
        while s.serving_health() != "healthy":
            if time.monotonic() > deadline:
                logs = s.compose("logs", "--no-color", "--tail", "200", check=False).stdout
                pytest.fail(f"serving not healthy after 30 min (health: {s.serving_health()}):\n{logs}")
            time.sleep(5)
        yield s
    finally:
        s.compose("--profile", "monitoring", "down", "--volumes", "--remove-orphans", check=False, timeout=300)


def test_export_ran_once_and_wrote_version_1(stack):
    for m in parse_models_config().model_config_list.config:
        version = stack.models / m.name / "1"
        assert (version / "saved_model.pb").is_file()
        assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    # a second run skips the export
    done = stack.compose("run", "--rm", "export")
    assert "skipping" in done.stdout


def test_serving_container_is_healthy(stack):
    assert stack.serving_health() == "healthy"
    # the export container ran to completion with exit code 0
    ps = stack.compose("ps", "--all", "--format", "json", "export").stdout
    rows = json.loads(ps) if ps.startswith("[") else [json.loads(l) for l in ps.splitlines() if l.strip()]
    assert rows and rows[0]["State"] == "exited" and rows[0]["ExitCode"] == 0, rows


def test_rest_and_grpc_answer_with_the_clients(stack):
    clients = pytest.importorskip("clients")
    name = parse_models_config().model_config_list.config[0].name
    with clients.RestClient(stack.rest_url) as rest, clients.GrpcClient(stack.grpc_target) as grpc:
        for client in (rest, grpc):
            client.wait_until_available(name, timeout=120)
            result = client.predict(name, ["hello world", "TensorFlow Serving in Docker"])
            assert result["embedding"].shape == (2, MINILM_DIM)


def test_rest_predict_raw(stack):
    name = parse_models_config().model_config_list.config[0].name
    status, body = post(f"{stack.rest_url}/v1/models/{name}:predict", {"instances": ["hello world"]})
    assert status == 200 and len(body["predictions"][0]) == MINILM_DIM


def test_prometheus_metrics_and_scrape(stack):
    status, body = get(stack.rest_url + parse_monitoring().prometheus_config.path)
    assert status == 200 and ":tensorflow:serving:" in body
    url = f"http://127.0.0.1:{stack.env['PROMETHEUS_PORT']}/api/v1/targets"
    deadline = time.monotonic() + 120
    health = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                targets = json.loads(r.read())["data"]["activeTargets"]
            health = [t["health"] for t in targets if t["labels"].get("job") == "tfserving"]
            if health == ["up"]:
                break
        except OSError:
            pass
        time.sleep(3)
    assert health == ["up"], health


def test_new_version_is_hot_reloaded(stack):
    name = parse_models_config().model_config_list.config[0].name
    staging = stack.models / f".{name}-2"
    shutil.copytree(stack.models / name / "1", staging)
    staging.rename(stack.models / name / "2")
    states = wait_for_version(stack.rest_url, name, "2", timeout=180, interval=2)
    assert states.get("2") == "AVAILABLE", states


def test_gpu_override_builds_where_a_gpu_is_present(docker):
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU on this machine (nvidia-smi missing)")
    done = subprocess.run(["docker", "compose", "-f", str(ROOT / "compose.yaml"), "-f", str(GPU_OVERRIDE),
                           "build", "serving"], cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr


def test_serving_image_with_models_baked_in(docker, stack):
    tag = f"tfserving-transformers/serving:test-baked-{uuid.uuid4().hex[:6]}"
    context = stack.models.parent / "bake-context"
    shutil.copytree(ROOT / "docker", context / "docker")
    shutil.copytree(stack.models, context / "models", ignore=shutil.ignore_patterns(".*"))
    build = subprocess.run(["docker", "build", "-f", str(context / "docker" / "serving.Dockerfile"),
                            "--build-arg", "MODELS=baked", "-t", tag, str(context)],
                           capture_output=True, text=True, timeout=3000)
    assert build.returncode == 0, build.stderr
    port = free_port()
    container = subprocess.run(["docker", "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8501", tag],
                               capture_output=True, text=True, check=True).stdout.strip()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            health = subprocess.run(["docker", "inspect", "--format", "{{.State.Health.Status}}", container],
                                    capture_output=True, text=True).stdout.strip()
            if health == "healthy":
                break
            time.sleep(3)
        assert health == "healthy"
        name = parse_models_config().model_config_list.config[0].name
        status, body = post(f"http://127.0.0.1:{port}/v1/models/{name}:predict", {"instances": ["hi"]})
        assert status == 200
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
