"""The repository's TF Serving configs, started with `python -m server`, serve the exported model.

This proves docker/config/ and the serving command line of compose.yaml (not
the image): the tiny export is laid out under every name in models.config,
models.config is rewritten only in its base_path, and the server gets exactly
compose's flags (config paths pointed at the copy, free ports, loopback).
Readiness is judged by docker/healthcheck.sh, the image's HEALTHCHECK.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from server import free_port
from tests._docker import (CONFIG, CONTAINER_CONFIG_DIR, DOCKER, ROOT, compose_config, get, parse_models_config,
                           parse_monitoring, post, wait_for_version)

STARTUP_SECONDS = 300


def healthcheck(rest_port: int, config: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "REST_API_PORT": str(rest_port), "MODEL_CONFIG_FILE": str(config)}
    return subprocess.run(["bash", str(DOCKER / "healthcheck.sh")], env=env, capture_output=True,
                          text=True, timeout=30)


class Served:
    def __init__(self, proc, rest_port, grpc_port, models, config_dir, log):
        self.proc, self.rest_port, self.grpc_port = proc, rest_port, grpc_port
        self.models, self.config_dir, self.log = models, config_dir, log
        self.rest_url = f"http://127.0.0.1:{rest_port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def serve_with_repo_configs(version_dir: Path, tmp: Path):
    """`python -m server` with docker/config and compose's flags, `version_dir` as version 1 of every model."""
    if importlib.util.find_spec("server.__main__") is None:
        pytest.skip("python -m server is not there yet (server/__main__.py)")
    models, config_dir = tmp / "models", tmp / "config"
    shutil.copytree(CONFIG, config_dir)
    cfg = parse_models_config()
    for m in cfg.model_config_list.config:  # the export under every served name
        shutil.copytree(version_dir, models / m.name / "1")
        m.base_path = str(models / m.name)   # the only change to the repo's models.config
    (config_dir / "models.config").write_text(text_format.MessageToString(cfg))

    grpc_port, rest_port = free_port(), free_port()
    flags = []
    for arg in compose_config(ROOT / "compose.yaml")["services"]["serving"]["command"]:
        name = arg[2:].partition("=")[0]
        if name == "port":
            arg = f"--port={grpc_port}"
        elif name == "rest_api_port":
            arg = f"--rest_api_port={rest_port}"
        flags.append(arg.replace(CONTAINER_CONFIG_DIR + "/", f"{config_dir}/"))
    flags.append("--host=127.0.0.1")  # python -m server's own flag: stay on loopback in tests

    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "HF_HUB_OFFLINE": "1"}
    log = tmp / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "server", *flags], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    served = Served(proc, rest_port, grpc_port, models, config_dir, log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:  # ready = the image's HEALTHCHECK passes
            if proc.poll() is not None:
                pytest.fail(f"python -m server {' '.join(flags)} exited with {proc.returncode}:\n"
                            f"{served.logs()}")
            if healthcheck(rest_port, config_dir / "models.config").returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"models not AVAILABLE after {STARTUP_SECONDS}s:\n{served.logs()}")
            time.sleep(1)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    with serve_with_repo_configs(tiny_model_dir / "1", tmp_path_factory.mktemp("docker-configs")) as s:
        yield s


def test_every_model_in_models_config_is_available(served):
    done = healthcheck(served.rest_port, served.config_dir / "models.config")
    assert done.returncode == 0, done.stderr
    for m in parse_models_config().model_config_list.config:
        status, body = get(f"{served.rest_url}/v1/models/{m.name}")
        assert status == 200
        states = {v["version"]: v["state"] for v in json.loads(body)["model_version_status"]}
        assert states.get("1") == "AVAILABLE", states


def test_version_labels_from_models_config_resolve(served):
    for m in parse_models_config().model_config_list.config:
        for label, version in m.version_labels.items():
            status, body = post(f"{served.rest_url}/v1/models/{m.name}/labels/{label}:predict",
                                {"instances": ["hello world"]})
            assert status == 200, body
            status, meta = get(f"{served.rest_url}/v1/models/{m.name}/labels/{label}/metadata")
            assert status == 200 and json.loads(meta)["model_spec"]["version"] == str(version)


def test_predict_over_rest_with_batching_on(served):
    name = parse_models_config().model_config_list.config[0].name
    url = f"{served.rest_url}/v1/models/{name}:predict"
    texts = ["hello world", "the quick brown fox", "a", "model serving is fast"]
    # concurrent single requests go through the batching scheduler (batching.config)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: post(url, {"instances": [t]}), texts * 4))
    for status, body in results:
        assert status == 200, body
        assert len(body["predictions"]) == 1
    status, body = post(url, {"instances": texts})
    assert status == 200 and len(body["predictions"]) == len(texts)


def test_predict_over_grpc(served):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    import tensorflow as tf

    name = parse_models_config().model_config_list.config[0].name
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["hello world", "good movie"]))
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    assert response.model_spec.version.value == 1
    assert list(response.outputs)


def test_prometheus_metrics_on_the_monitoring_path(served):
    path = parse_monitoring().prometheus_config.path
    status, body = get(served.rest_url + path)
    assert status == 200
    assert ":tensorflow:serving:" in body


def test_new_version_is_hot_reloaded(served):
    """What the README promises: export a new version into models/NAME/ and it is served."""
    cfg = parse_models_config().model_config_list.config[0]
    flags = {a[2:].partition("=")[0]: a.partition("=")[2]
             for a in compose_config(ROOT / "compose.yaml")["services"]["serving"]["command"]}
    wait = int(flags["file_system_poll_wait_seconds"])
    staging = served.models / f".{cfg.name}-2.tmp"
    shutil.copytree(served.models / cfg.name / "1", staging)
    staging.rename(served.models / cfg.name / "2")   # appear whole, as an export should
    states = wait_for_version(served.rest_url, cfg.name, "2", timeout=wait + 120)
    assert states.get("2") == "AVAILABLE", f"{states}\n{served.logs()}"
    status, body = post(f"{served.rest_url}/v1/models/{cfg.name}:predict", {"instances": ["hello"]})
    assert status == 200
    if cfg.model_version_policy.WhichOneof("policy_choice") == "latest" \
            and cfg.model_version_policy.latest.num_versions >= 2:
        assert states.get("1") == "AVAILABLE", "latest{num_versions: 2} keeps the previous version"


def test_export_script_with_the_real_export_cli(tiny_checkpoint, tmp_path):
    """docker/export.sh (the export image's entrypoint) drives `python -m export` as compose does."""
    models = tmp_path / "models"
    models.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "MODELS_DIR": str(models), "TF_USE_LEGACY_KERAS": "1", "HF_HUB_OFFLINE": "1"}
    script = str(DOCKER / "export.sh")
    done = subprocess.run(["bash", script, "minilm", "feature-extraction", str(tiny_checkpoint)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    version = models / "minilm" / "1"
    assert (version / "saved_model.pb").is_file()
    assert sorted(p.name for p in models.iterdir()) == ["minilm"]               # no staging left over
    again = subprocess.run(["bash", script, "minilm", "feature-extraction", str(tiny_checkpoint)],
                           env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "skipping" in again.stdout
    assert sorted(p.name for p in (models / "minilm").iterdir()) == ["1"]
    # compose passes --enable_model_warmup=true: the export must leave requests to replay
    if not (version / "assets.extra" / "tf_serving_warmup_requests").is_file():
        pytest.skip("python -m export wrote no assets.extra/tf_serving_warmup_requests yet: "
                    "--enable_model_warmup has nothing to replay (export is fine otherwise)")


@pytest.mark.slow
def test_repo_configs_serve_the_real_minilm_export(minilm_model_dir, tmp_path):
    """What `docker compose up` serves, minus the image: the real export behind the repo's configs."""
    with serve_with_repo_configs(minilm_model_dir / "1", tmp_path) as served:
        name = parse_models_config().model_config_list.config[0].name
        status, body = post(f"{served.rest_url}/v1/models/{name}:predict",
                            {"instances": ["hello world", "TensorFlow Serving in Docker"]})
        assert status == 200, body
        assert [len(p) for p in body["predictions"]] == [384, 384]
