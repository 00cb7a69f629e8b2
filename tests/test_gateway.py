"""The OpenAI-compatible gateway, called with the official `openai` package.

Real processes on free ports: `python -m server` serving the tiny random BERT
export, and `python -m gateway` in front of it; the reference vectors come from
the same server's `text` signature over gRPC.
"""
from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from clients import GrpcClient
from gateway import MAX_INPUTS, GatewayProcess
from gateway._embeddings import truncate
from gateway._errors import OpenAIError
from server import ServerProcess, free_port
from tests._checkpoints import WORDS
from tests._references import hf_tokenizer

REPO = Path(__file__).resolve().parent.parent
API_KEY = "sk-test-gateway"
ALIAS = "text-embedding-3-small"  # an OpenAI model id routed to the tiny model
BATCH = 16  # the gateway's --batch-size here: lists longer than this are split


def make_texts(n: int) -> list[str]:
    """n different texts of 1-12 words (different lengths, so length-grouped batching reorders them)."""
    return [" ".join(WORDS[(i * 7 + j * 13) % len(WORDS)] for j in range(i % 12 + 1)) + f" {i}" for i in range(n)]


@pytest.fixture(scope="module")
def upstream(tiny_model_dir):
    with ServerProcess(["--model_name=tiny", f"--model_base_path={tiny_model_dir}"], timeout=300) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream):
    args = ["--upstream", upstream.grpc_target, "--model", "tiny", "--model", f"{ALIAS}=tiny",
            "--batch-size", str(BATCH), "--api-key", API_KEY]
    with GatewayProcess(args) as gw:
        yield gw
    assert gw.returncode == 0, gw.stderr


@pytest.fixture(scope="module")
def client(gateway):
    # max_retries=0: the openai package retries 5xx by itself; the tests want the first answer.
    return openai.OpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def text_signature(upstream):
    with GrpcClient(upstream.grpc_target) as grpc_client:
        yield lambda texts: grpc_client.predict("tiny", {"text": texts}, signature_name="text")["embedding"]


def vectors(response) -> np.ndarray:
    assert [d.index for d in response.data] == list(range(len(response.data)))
    # encoding_format="base64" given explicitly: the openai package hands over the string as received
    return np.array([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") if isinstance(d.embedding, str)
                     else d.embedding for d in response.data], dtype=np.float32)


# -- embeddings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding_format", ["float", "base64", None])
def test_openai_client_gets_exactly_the_text_signature_vectors(client, text_signature, encoding_format):
    texts = ["hello world", "the quick brown fox jumps over the lazy dog", "a"]
    kwargs = {} if encoding_format is None else {"encoding_format": encoding_format}  # None: base64 on the wire
    response = client.embeddings.create(model="tiny", input=texts, **kwargs)
    assert response.object == "list" and response.model == "tiny"
    np.testing.assert_array_equal(vectors(response), text_signature(texts))


def test_a_single_string_input_gives_one_embedding(client, text_signature):
    response = client.embeddings.create(model=ALIAS, input="hello world", encoding_format="float")
    assert len(response.data) == 1 and response.model == ALIAS
    np.testing.assert_array_equal(vectors(response), text_signature(["hello world"]))


def test_base64_is_little_endian_float32_bytes(gateway, text_signature):
    body = {"model": "tiny", "input": ["hello world"], "encoding_format": "base64"}
    raw = httpx.post(f"{gateway.base_url}/embeddings", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
    assert raw.status_code == 200
    decoded = np.frombuffer(base64.b64decode(raw.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(decoded, text_signature(["hello world"])[0])


def test_long_input_lists_are_batched_and_keep_their_order(client, text_signature):
    texts = make_texts(BATCH * 6 + 5)  # 7 upstream requests per signature, of mixed lengths
    got = vectors(client.embeddings.create(model="tiny", input=texts, encoding_format="float"))
    # Batches group texts of similar length, so rows are padded differently than in one request: the
    # same vectors up to float32 rounding, in input order (neighbouring texts differ by far more).
    np.testing.assert_allclose(got, text_signature(texts), atol=1e-6)


def test_usage_counts_the_model_tokens(client, tiny_checkpoint):
    texts = ["hello world", "the quick brown fox jumps over the lazy dog", "unbelievable xyzzy"]
    expected = sum(len(ids) for ids in hf_tokenizer(tiny_checkpoint)(texts)["input_ids"])
    usage = client.embeddings.create(model="tiny", input=texts).usage
    assert usage.prompt_tokens == usage.total_tokens == expected


def test_dimensions_truncates_and_renormalises(client, text_signature):
    texts = ["hello world", "a cat and a dog"]
    got = vectors(client.embeddings.create(model="tiny", input=texts, dimensions=8, encoding_format="float"))
    full = text_signature(texts)
    expected = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    assert got.shape == (2, 8)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)
    same = vectors(client.embeddings.create(model="tiny", input=texts, dimensions=32, encoding_format="float"))
    np.testing.assert_array_equal(same, full)


def test_dimensions_are_refused_for_embeddings_that_are_not_unit_vectors():
    with pytest.raises(OpenAIError) as err:
        truncate(np.array([[3.0, 4.0, 0.0]], dtype=np.float32), 2, "raw")
    assert err.value.status == 400 and err.value.param == "dimensions" and "normalised" in err.value.message
    np.testing.assert_allclose(truncate(np.array([[0.6, 0.0, 0.8]], dtype=np.float32), 2, "unit"), [[1.0, 0.0]])


# -- models --------------------------------------------------------------------------------------

def test_models_lists_every_routed_embedding_model(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny", ALIAS]
    assert all(m.object == "model" and m.owned_by for m in models)
    assert client.models.retrieve(ALIAS).id == ALIAS


def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.embeddings.create(model="gpt-nope", input="hello")
    assert err.value.status_code == 404 and err.value.code == "model_not_found"
    assert "tiny" in err.value.message  # says what the gateway serves
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nope")


# -- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, param, words", [
    ({"input": []}, "input", "empty list"),
    ({"input": ""}, "input", "empty string"),
    ({"input": ["ok", ""]}, "input", "input[1]"),
    ({"input": ["x"] * (MAX_INPUTS + 1)}, "input", f"at most {MAX_INPUTS}"),
    ({"input": [101, 7592, 102]}, "input", "token arrays are not supported"),
    ({"input": [[101, 7592, 102]]}, "input", "token arrays are not supported"),
    ({"input": [{"text": "x"}]}, "input", "must be a string"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format", "'float', 'base64'"),
    ({"input": "x", "dimensions": 0}, "dimensions", "positive integer"),
    ({"input": "x", "dimensions": 33}, "dimensions", "returns 32"),
], ids=["empty-list", "empty-string", "empty-item", "too-many", "tokens", "token-lists", "object",
        "encoding-format", "dimensions-0", "dimensions-too-big"])
def test_bad_input_is_400_in_openai_format(client, body, param, words):
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="tiny", **body)
    assert err.value.status_code == 400
    assert err.value.body["param"] == param and err.value.body["type"] == "invalid_request_error"
    assert words in err.value.message


def test_malformed_json_and_wrong_urls_get_openai_errors(gateway):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    bad = httpx.post(f"{gateway.base_url}/embeddings", content=b"{not json", headers=headers)
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]["message"]
    assert httpx.get(f"{gateway.base_url}/embeddings", headers=headers).status_code == 405
    unknown = httpx.post(f"{gateway.base_url}/chat/completions", json={}, headers=headers)
    assert unknown.status_code == 404 and set(unknown.json()["error"]) == {"message", "type", "param", "code"}


def test_a_wrong_api_key_is_401(gateway):
    wrong = openai.OpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        wrong.embeddings.create(model="tiny", input="hello")
    assert err.value.code == "invalid_api_key"


def test_health_reports_the_upstream_models(gateway):
    health = httpx.get(f"{gateway.url}/health")
    assert health.status_code == 200 and health.json()["models"] == {"tiny": "AVAILABLE"}


# -- upstream down -------------------------------------------------------------------------------

def test_upstream_down_is_a_clear_503():
    nobody = f"127.0.0.1:{free_port()}"
    with GatewayProcess(["--upstream", nobody, "--model", "tiny"]) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as err:
            client.embeddings.create(model="tiny", input="hello")
        assert err.value.status_code == 503 and err.value.code == "upstream_unavailable"
        assert nobody in err.value.message and "Traceback" not in err.value.response.text
        with pytest.raises(openai.InternalServerError) as listing:
            client.models.list()
        assert listing.value.status_code == 503
        assert httpx.get(f"{gw.url}/health").status_code == 503
    assert gw.returncode == 0


# -- command line --------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    ([], "no models to serve"),
    (["--model", "m", "--upstream", "nohost"], "HOST:PORT"),
    (["--model", "m", "--port", "http"], "port number"),
    (["--model", "a=m", "--model", "a=n"], "already routes to"),
    (["--model-config-file", "/nonexistent/models.config"], "cannot read"),
])
def test_bad_flags_exit_2_with_one_line_naming_the_flag(args, words):
    done = subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_models_config_file_routes_every_model_it_names(tmp_path):
    from gateway import parse_args

    config = REPO / "docker" / "config" / "models.config"
    assert parse_args(["--model-config-file", str(config)]).routes == {"minilm": "minilm"}


def test_public_names():
    import gateway

    assert {n for n in vars(gateway) if not n.startswith("_")} == set(gateway.__all__)
    assert {"Gateway", "GatewayConfig", "GatewayProcess", "main"} <= set(gateway.__all__)


@pytest.mark.parametrize("module", ["_errors", "_embeddings", "_models", "_http", "_app", "_process"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"gateway.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_importing_the_gateway_imports_no_tensorflow_torch_or_transformers():
    probe = "import sys, gateway; print(sorted(m for m in ('tensorflow', 'torch', 'transformers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


# -- the real model ------------------------------------------------------------------------------

@pytest.mark.slow
def test_minilm_through_the_gateway_equals_its_text_signature(minilm_server, minilm_checkpoint):
    texts = ["This is an example sentence.", "héllo wörld, ünïcode", "A much longer sentence " * 20]
    with GatewayProcess(["--upstream", minilm_server.grpc_target, "--model", "minilm"]) as gw, \
            GrpcClient(minilm_server.grpc_target) as grpc_client:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        response = client.embeddings.create(model="minilm", input=texts)
        expected = grpc_client.predict("minilm", {"text": texts}, signature_name="text")["embedding"]
        np.testing.assert_array_equal(vectors(response), expected)
        tokenizer = hf_tokenizer(minilm_checkpoint)
        counts = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        assert response.usage.prompt_tokens == sum(counts)
