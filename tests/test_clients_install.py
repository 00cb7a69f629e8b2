"""The base install is the clients alone: a fresh virtual environment with
`pip install tfserving-transformers` (no extras) calls `python -m server` over
REST and gRPC, and holds no TensorFlow, PyTorch or Transformers.

The package is built from this checkout (its protos compiled at build time)
and its dependencies come from the package index (kept in a wheelhouse in the
user's cache, so a second run takes seconds). The server runs in the full
environment (this interpreter).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from server import ServerProcess

REPO = Path(__file__).resolve().parent.parent
MAX_ENV_MB = 150
WHEELHOUSE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tfserving-transformers" / "client-wheels"

# Runs inside the fresh environment: every public call a TF-free app makes.
CLIENT_SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys
    import numpy as np
    from clients import GrpcClient, RestClient

    rest_url, grpc_target = sys.argv[1:3]
    texts = [f"text number {i}" for i in range(40)]
    out = {"heavy": [m for m in ("tensorflow", "torch", "transformers") if importlib.util.find_spec(m)]}
    with RestClient(rest_url) as rest, GrpcClient(grpc_target) as grpc:
        for name, client in (("rest", rest), ("grpc", grpc)):
            client.wait_until_available("tiny", timeout=60)
            one = client.predict("tiny", {"text": texts[:2]}, signature_name="text")
            many = client.predict_batched("tiny", texts, signature_name="text", batch_size=8)
            out[name] = {
                "status": client.status("tiny").to_dict(),
                "metadata": sorted(client.metadata("tiny").signatures),
                "predict": {k: list(v.shape) for k, v in one.items()},
                "batched": {k: list(v.shape) for k, v in many.outputs.items()},
                "first_rows": many["embedding"][:2].tolist(),
                "predict_rows": one["embedding"].tolist(),
            }
    out["loaded"] = sorted(m for m in ("tensorflow", "torch", "transformers") if m in sys.modules)
    print(json.dumps(out))
""")


def _copy_sources(dest: Path) -> Path:
    """The files a build reads (pyproject's packages, setup.py, README), without models or caches."""
    found = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.binpb")
    for package in (p.rstrip("*") for p in found["include"]):
        shutil.copytree(REPO / package, dest / package, ignore=ignore)
    return dest


def _size_mb(root: Path) -> float:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total / 1e6


def _pip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
                          check=check, env=env, timeout=900, capture_output=True, text=True)


@pytest.fixture(scope="module")
def client_env(tmp_path_factory) -> Path:
    """A fresh venv (no pip in it: the running pip installs into it) with the base install only.

    The wheel is built from this checkout with this environment's setuptools and
    grpcio-tools; its dependencies install from a wheelhouse kept in the user's
    cache, filled from the package index the first time (index look-ups, not
    downloads, are what take time here).
    """
    root = tmp_path_factory.mktemp("client-env")
    sources, dist = root / "src", root / "dist"
    sources.mkdir()
    _copy_sources(sources)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), str(sources))
    (wheel,) = dist.glob("*.whl")
    env = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    install = ["--python", str(env / "bin" / "python"), "install", "--no-index", "--find-links", str(WHEELHOUSE),
               str(wheel)]
    if _pip(*install, check=False).returncode != 0:  # first run, or new dependencies
        _pip("download", "--dest", str(WHEELHOUSE), str(wheel))
        (WHEELHOUSE / wheel.name).unlink(missing_ok=True)  # keep only the dependencies there
        _pip(*install)
    return env


def test_the_base_install_has_no_tensorflow_torch_or_transformers_and_stays_small(client_env):
    python = client_env / "bin" / "python"
    probe = "import importlib.util as u; print([m for m in ('tensorflow', 'torch', 'transformers') if u.find_spec(m)])"
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True,
                           cwd=client_env).stdout.strip()
    assert found == "[]"
    size = _size_mb(client_env)
    print(f"\nfresh client-only environment: {size:.1f} MB (limit {MAX_ENV_MB} MB)")
    assert size < MAX_ENV_MB


def test_the_base_install_calls_the_server_over_rest_and_grpc(client_env, tiny_model_dir, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(CLIENT_SCRIPT)
    with ServerProcess([f"--model_base_path={tiny_model_dir}", "--model_name=tiny"], timeout=300) as server:
        run = subprocess.run([str(client_env / "bin" / "python"), str(script), server.rest_url, server.grpc_target],
                             capture_output=True, text=True, cwd=tmp_path, timeout=300,
                             env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["heavy"] == [] and out["loaded"] == []
    for transport in ("rest", "grpc"):
        got = out[transport]
        assert got["status"]["versions"][0]["state"] == "AVAILABLE", transport
        assert "text" in got["metadata"], transport
        assert got["predict"]["embedding"][0] == 2 and got["batched"]["embedding"][0] == 40, transport
        np.testing.assert_allclose(got["first_rows"], got["predict_rows"], atol=1e-4, err_msg=transport)
    np.testing.assert_allclose(out["rest"]["first_rows"], out["grpc"]["first_rows"], atol=1e-4)
