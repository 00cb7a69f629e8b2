"""`python -m export tfjs`: the converted model agrees with the SavedModel in Node and in a real browser.

Needs `.venv-tfjs/` (the converter), `web/node_modules/` and Node.js; `make test` installs them
(`make venv-tfjs web-deps browser`). Marked `tfjs`: `pytest -m "not tfjs"` skips them locally.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from export._tfjs import TFJS_VENV, WEB_DIR, TfjsOptions, convert_to_tfjs, node_run

pytestmark = pytest.mark.tfjs

REPO = Path(__file__).resolve().parent.parent
SHARD_LIMIT = 4 * 1024 * 1024


def _require_tools():
    missing = [what for what, ok in (
        (f"{TFJS_VENV} (make venv-tfjs)", (TFJS_VENV / "bin" / "tensorflowjs_converter").exists()),
        ("web/node_modules (make web-deps)", (WEB_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir()),
        ("node", shutil.which("node") is not None)) if not ok]
    if missing:
        pytest.fail(f"TF.js tools missing: {', '.join(missing)}; `make test` installs them")


def _convert(model_dir: Path, tmp_path_factory, name: str):
    _require_tools()
    out = tmp_path_factory.mktemp("tfjs") / name
    return out, convert_to_tfjs(TfjsOptions(path=model_dir / "1", output=out), log=lambda *_: None)


@pytest.fixture(scope="module")
def tiny_tfjs(tiny_model_dir, tmp_path_factory):
    return _convert(tiny_model_dir, tmp_path_factory, "tiny")


@pytest.fixture(scope="module")
def tiny_classifier_tfjs(tiny_classifier_dir, tmp_path_factory):
    return _convert(tiny_classifier_dir, tmp_path_factory, "sentiment")


def _text_signature(model_dir: Path, texts: list[str]) -> dict:
    from export._serving_session import ServingSession

    session = ServingSession.load(model_dir)
    try:
        return session.run("text", {"text": np.array(texts, dtype=object)})
    finally:
        session.close()


def test_conversion_writes_graph_model_shards_and_tokenizer(tiny_tfjs):
    out, report = tiny_tfjs
    for name in ("model.json", "tokenizer.json", "tokenizer_config.json", "tfjs_model.json", "conversion_report.json"):
        assert (out / name).is_file(), name
    shards = sorted(out.glob("group*-shard*"))
    assert len(shards) == report["shards"] >= 1
    assert all(p.stat().st_size <= SHARD_LIMIT for p in shards)
    info = json.loads((out / "tfjs_model.json").read_text())
    assert info["inputs"] == ["attention_mask", "input_ids", "token_type_ids"]
    assert "embedding" in info["outputs"]


def test_float32_outputs_match_the_savedmodel_within_1e4(tiny_tfjs):
    _, report = tiny_tfjs
    v = report["verification"]
    assert v["ok"]
    assert v["numeric"]["embedding"]["max_abs_error"] <= 1e-4
    assert v["numeric"]["embedding"]["min_cosine"] > 0.9999


def test_js_tokenizer_differs_from_the_in_graph_one_only_on_reported_texts(tiny_tfjs):
    # Both tokenizers are compared on the export's parity corpus; known differences (special-token
    # strings in the text, final sigma) are reported with the ids side by side, never hidden.
    from export._tokenizer_parity import CORPUS

    _, report = tiny_tfjs
    t = report["verification"]["tokenizer"]
    assert t["texts"] == len(CORPUS)
    special = {text for kind, text in CORPUS if kind == "special-tokens"}
    assert {e["text"] for e in t["examples"]} <= special  # nothing but special-token strings differs
    assert t["mismatches"] == len(t["examples"])


def test_cpu_and_wasm_backends_agree(tiny_tfjs):
    out, _ = tiny_tfjs
    texts = ["hello world", "a longer sentence about serving models in the browser", ""]
    cpu = node_run(out, texts, backend="cpu")
    wasm = node_run(out, texts, backend="wasm")
    assert cpu["backend"] == "cpu" and wasm["backend"] == "wasm"
    assert cpu["ids"] == wasm["ids"]
    np.testing.assert_allclose(cpu["outputs"]["embedding"], wasm["outputs"]["embedding"], atol=1e-5)


def test_a_signature_with_tf_text_ops_is_refused_naming_them(tiny_model_dir, tmp_path, capsys):
    from export._cli import main

    _require_tools()
    code = main(["tfjs", str(tiny_model_dir / "1"), "--output", str(tmp_path / "out"), "--signature", "text"])
    err = capsys.readouterr().err
    assert code == 1
    assert "TensorFlow.js cannot run" in err and "Wordpiece" in err
    assert not (tmp_path / "out").exists()  # refused before converting


def test_bad_quantization_names_the_flag(tiny_model_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "export", "tfjs", str(tiny_model_dir / "1"), "--output",
                           str(tmp_path / "o"), "--quantize", "int4"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2
    assert "--quantize" in done.stderr


def test_classifier_outputs_match_the_savedmodel(tiny_classifier_tfjs, tiny_classifier_dir):
    out, report = tiny_classifier_tfjs
    assert report["verification"]["numeric"]["probabilities"]["max_abs_error"] <= 1e-4
    info = json.loads((out / "tfjs_model.json").read_text())
    assert info["task"] == "text-classification" and info["labels"]
    assert "label" not in info["outputs"]  # strings stay on the server side; the page maps ids to labels


# --- the page in a real browser ---------------------------------------------------------------

def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def web_server(tiny_tfjs, tiny_classifier_tfjs, tmp_path_factory):
    """The page's one-line server (python -m http.server) over a copy of web/ with the converted models."""
    root = tmp_path_factory.mktemp("site")
    for name in ("index.html", "app.mjs", "embed.mjs"):
        shutil.copy(WEB_DIR / name, root / name)
    (root / "node_modules").symlink_to(WEB_DIR / "node_modules")
    shutil.copytree(tiny_tfjs[0], root / "models" / "tiny")
    shutil.copytree(tiny_classifier_tfjs[0], root / "models" / "sentiment")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:  # the server is a new Python process: wait until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"python -m http.server did not listen on {port}")
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on this machine (make browser installs Debian's as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


def _open(browser, url):
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready", timeout=120_000)
    assert page.evaluate("document.body.dataset.ready") == "true", page.inner_text("#status")
    return page


def test_page_shows_the_savedmodels_similarity(browser, web_server, tiny_model_dir):
    a, b = "The cat sat on the mat.", "Serving transformers with TensorFlow"
    page = _open(browser, f"{web_server}/?model=models/tiny")
    page.fill("#text-a", a)
    page.fill("#text-b", b)
    page.click("#run")
    page.wait_for_function("document.querySelector('#run').disabled === false")
    shown = json.loads(page.get_attribute("#result", "data-values"))["similarity"]
    e = _text_signature(tiny_model_dir / "1", [a, b])["embedding"]
    expected = float(e[0] @ e[1] / (np.linalg.norm(e[0]) * np.linalg.norm(e[1])))
    assert abs(shown - expected) < 1e-4
    assert f"{expected:.4f}" in page.inner_text("#result")
    page.close()


def test_page_shows_the_classifiers_label_and_score(browser, web_server, tiny_classifier_dir):
    text = "What a wonderful film"
    page = _open(browser, f"{web_server}/?model=models/sentiment")
    page.fill("#text-a", text)
    page.click("#run")
    page.wait_for_function("document.querySelector('#run').disabled === false")
    shown = json.loads(page.get_attribute("#result", "data-values"))
    out = _text_signature(tiny_classifier_dir / "1", [text])
    assert shown["label"] == out["label"][0].decode()
    assert abs(shown["score"] - float(out["score"][0])) < 1e-4
    page.close()


# --- the real model --------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["float32", "float16", "uint8"])
def test_minilm_conversion(minilm_model_dir, tmp_path, quantize):
    _require_tools()
    report = convert_to_tfjs(TfjsOptions(path=minilm_model_dir / "1", output=tmp_path / quantize, quantize=quantize),
                             log=lambda *_: None)
    n = report["verification"]["numeric"]["embedding"]
    print(f"\nMiniLM {quantize}: {report['weights_bytes'] / 2**20:.1f} MiB in {report['shards']} shards, "
          f"max abs error {n['max_abs_error']:.2e}, min cosine {n['min_cosine']:.6f}")
    assert report["largest_shard_bytes"] <= SHARD_LIMIT
    # float32 is the same model; float16 rounds weights; uint8 (affine, per tensor) costs the most.
    assert n["min_cosine"] > {"float32": 0.99999, "float16": 0.9999, "uint8": 0.9}[quantize]
    if quantize == "float32":
        assert n["max_abs_error"] <= 1e-4
