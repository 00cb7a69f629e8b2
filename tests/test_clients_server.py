"""clients/ against the real `python -m server` process (no mocks: real sockets, real models).

One module-scoped server serves three models:
- `tiny`: the tiny random BERT feature-extraction export (`text` default signature, `tokens`);
- `bert`: a tiny classifier exported with `--default-signature tokens` (the blog post's snippets);
- `examples`: a tiny classify/regress model (serialized tf.Examples in).
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from clients import (AsyncGrpcClient, AsyncRestClient, BatchPredictionError, DeadlineExceededError,
                     GrpcClient, InvalidArgumentError, NotFoundError, RequestTooLargeError, RestClient,
                     RetryPolicy)
from clients._grpc import GrpcCodec
from server import ServerProcess
from tests._checkpoints import WORDS
from tests._clients_models import make_examples_model
from tests._model_configs import model_config
from tests._signature_checks import assert_same_outputs, call

REPO = Path(__file__).resolve().parent.parent

TRANSPORTS = ["rest", "grpc"]


def make_texts(n: int, start: int = 0) -> list[str]:
    """n different texts of 2-9 words (their embeddings differ, so order mistakes show)."""
    return [" ".join(WORDS[(i * 7 + j * 13) % len(WORDS)] for j in range(i % 8 + 2)) + f" {i}"
            for i in range(start, start + n)]


@pytest.fixture(scope="module")
def served(tiny_model_dir, tiny_classifier_tokens_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("clients-models")
    make_examples_model(base / "examples")
    config = model_config({"tiny": tiny_model_dir, "bert": tiny_classifier_tokens_dir, "examples": base / "examples"},
                          base / "models.config", labels={"tiny": {"stable": 1}})
    with ServerProcess([f"--model_config_file={config}"], models=["tiny", "bert", "examples"],
                       timeout=300) as server:
        yield server


@pytest.fixture(scope="module")
def rest(served):
    with RestClient(served.rest_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def grpc_client(served):
    with GrpcClient(served.grpc_target, timeout=60) as client:
        yield client


@pytest.fixture(params=TRANSPORTS)
def client(request, rest, grpc_client):
    return rest if request.param == "rest" else grpc_client


@pytest.fixture(scope="module")
def tiny_reference(tiny_model_dir):
    """The `text` signature called in-process on the same SavedModel."""
    return lambda texts: call(tiny_model_dir / "1", "text", {"text": texts})


def tokens_inputs(n: int, length: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, size=(n, length)).astype(np.int32)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


# ----------------------------------------------------------------------------- predict

def test_rest_and_grpc_predict_return_exactly_the_in_process_savedmodel_outputs(rest, grpc_client, tiny_reference):
    texts = make_texts(16)
    expected = tiny_reference(texts)
    for client in (rest, grpc_client):
        assert_same_outputs(client.predict("tiny", {"text": texts}, signature_name="text"), expected)


def test_a_single_input_signature_takes_the_array_itself(client):
    texts = make_texts(3)
    np.testing.assert_array_equal(client.predict("tiny", texts)["embedding"],
                                  client.predict("tiny", {"text": texts})["embedding"])


def test_bytes_inputs_give_the_same_result_as_the_same_text(client):
    texts = make_texts(4)
    np.testing.assert_array_equal(client.predict("tiny", [t.encode() for t in texts])["embedding"],
                                  client.predict("tiny", texts)["embedding"])


def test_rest_row_format_gives_the_columnar_result(served, rest):
    inputs = tokens_inputs(5)
    with RestClient(served.rest_url, request_format="row") as rows:
        got = rows.predict("tiny", inputs, signature_name="tokens")
    expected = rest.predict("tiny", inputs, signature_name="tokens")
    assert set(got) == set(expected) == {"embedding", "last_hidden_state"}
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])


def test_python_int_token_ids_are_sent_as_the_signatures_int32(client):
    ids = [[7, 8, 9], [10, 11, 12]]
    got = client.predict("tiny", {"input_ids": ids, "attention_mask": [[1, 1, 1]] * 2,
                                  "token_type_ids": [[0, 0, 0]] * 2}, signature_name="tokens")
    assert got["last_hidden_state"].shape == (2, 3, 32)


def test_version_1_is_served_and_an_absent_version_is_not_found(client):
    assert client.predict("tiny", ["hello"], version=1)["embedding"].shape == (1, 32)
    with pytest.raises(NotFoundError, match="tiny"):
        client.predict("tiny", ["hello"], version=7)


def test_a_version_label_selects_its_version_over_both(rest, grpc_client):
    texts = make_texts(3)
    for client in (rest, grpc_client):
        np.testing.assert_array_equal(client.predict("tiny", texts, label="stable")["embedding"],
                                      client.predict("tiny", texts, version=1)["embedding"])
        assert client.metadata("tiny", label="stable").version == 1
    errors = []
    for client in (rest, grpc_client):
        with pytest.raises(InvalidArgumentError) as info:
            client.predict("tiny", {"text": texts}, label="canary")
        errors.append(info.value.message)
    assert errors[0] == errors[1] and "canary" in errors[0]


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("model, inputs, options, error", [
    ("no-such-model", ["x"], {}, NotFoundError),
    ("tiny", {"text": ["x"]}, {"signature_name": "no-such-signature"}, InvalidArgumentError),
    ("tiny", {"txt": ["x"]}, {}, InvalidArgumentError),
], ids=["unknown-model", "unknown-signature", "unknown-input"])
def test_rest_and_grpc_raise_the_same_error_class_with_the_servers_message(rest, grpc_client, model, inputs,
                                                                           options, error):
    raised = []
    for client in (rest, grpc_client):
        with pytest.raises(error) as info:
            client.predict(model, inputs, **options)
        raised.append(info.value)
    assert type(raised[0]) is type(raised[1])
    assert raised[0].message == raised[1].message and raised[0].message
    assert raised[0].http_status == raised[1].http_status == error.default_http_status


def test_a_call_slower_than_its_timeout_raises_deadline_exceeded(client):
    with pytest.raises(DeadlineExceededError):
        client.predict("tiny", make_texts(3000), timeout=0.005)


# ----------------------------------------------------------------------------- metadata / status

def test_metadata_parses_names_dtypes_and_shapes_identically_over_both(rest, grpc_client):
    meta = rest.metadata("tiny")
    assert meta == grpc_client.metadata("tiny")
    assert meta.version == 1
    text = meta.signatures["text"]
    assert text.inputs["text"].dtype == "string" and text.inputs["text"].shape == (None,)
    assert text.outputs["embedding"].dtype == "float32" and text.outputs["embedding"].shape == (None, 32)
    assert meta.signatures["tokens"].inputs["input_ids"].dtype == "int32"


def test_status_reports_version_1_available_identically_over_both(rest, grpc_client):
    status = rest.status("tiny")
    assert status == grpc_client.status("tiny")
    assert status.available and [v.version for v in status.versions] == [1]
    assert status.versions[0].state == "AVAILABLE"


def test_wait_until_available_returns_the_status_of_a_served_model(client):
    assert client.wait_until_available("tiny", timeout=10).available


def test_wait_until_available_raises_deadline_exceeded_for_a_model_that_never_comes(client):
    start = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="'nope' was not AVAILABLE within 0.5 s"):
        client.wait_until_available("nope", timeout=0.5)
    assert time.monotonic() - start < 5


# ----------------------------------------------------------------------------- classify / regress

def test_classify_and_regress_give_the_same_results_over_both(rest, grpc_client):
    examples = [{"x": 0.0}, {"x": 2.0}]
    classified = [c.classify("examples", examples) for c in (rest, grpc_client)]
    for result in classified:
        assert result["classes"].tolist() == [[b"neg", b"pos"], [b"neg", b"pos"]]
        np.testing.assert_allclose(result["scores"], [[0.5, 0.5], [0.11920292, 0.8807971]], rtol=1e-6)
    regressed = [c.regress("examples", examples, signature_name="regress") for c in (rest, grpc_client)]
    for result in regressed:
        np.testing.assert_array_equal(result["outputs"], np.array([1.0, 5.0], np.float32))


# ----------------------------------------------------------------------------- predict_batched

def test_predict_batched_returns_5000_texts_in_input_order(client, tiny_reference):
    texts = make_texts(5000)
    result = client.predict_batched("tiny", texts, batch_size=64, concurrency=4)
    assert result.failed == [] and result.ok.all()
    assert result["embedding"].shape == (5000, 32)
    np.testing.assert_allclose(result["embedding"], tiny_reference(texts)["embedding"], atol=1e-5)


def test_predict_batched_reports_only_the_bad_row_of_a_request(client):
    inputs = tokens_inputs(40)
    clean = client.predict("tiny", inputs, signature_name="tokens")
    inputs["input_ids"][21, 2] = 10**6  # no such token id: the model's Gather fails for this row
    result = client.predict_batched("tiny", inputs, signature_name="tokens", batch_size=16, on_error="return")
    assert result.failed == [21]
    assert isinstance(result.errors[21], InvalidArgumentError)
    assert "1000000" in result.errors[21].message  # the server's own message
    good = result.ok
    np.testing.assert_allclose(result["embedding"][good], clean["embedding"][good], atol=1e-5)
    assert np.isnan(result["embedding"][21]).all()


def test_predict_batched_raises_with_the_partial_result_when_asked_to(client):
    inputs = tokens_inputs(10)
    inputs["input_ids"][3, 0] = 10**6
    with pytest.raises(BatchPredictionError, match="1 of 10 rows failed") as info:
        client.predict_batched("tiny", inputs, signature_name="tokens", batch_size=4)
    assert info.value.result.failed == [3] and list(info.value.errors) == [3]
    assert info.value.result.ok.sum() == 9


def test_predict_batched_does_not_retry_invalid_input(served):
    with RestClient(served.rest_url, retry=RetryPolicy(max_attempts=5, initial_backoff=2.0)) as client:
        inputs = tokens_inputs(1)
        inputs["input_ids"][0, 0] = 10**6
        start = time.monotonic()
        result = client.predict_batched("tiny", inputs, signature_name="tokens", on_error="return")
    assert result.failed == [0] and time.monotonic() - start < 2.0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_predict_batched_keeps_every_request_under_max_request_bytes(served, transport, tiny_reference):
    """The gRPC channel's send limit is max_request_bytes: a request over it would fail."""
    texts = [("hello world " * 50)[:500] + str(i) for i in range(300)]  # a batch of 64 is ~32 KB
    cls, address = (RestClient, served.rest_url) if transport == "rest" else (GrpcClient, served.grpc_target)
    with cls(address, max_request_bytes=16 * 1024, retry=None) as client:
        result = client.predict_batched("tiny", texts, batch_size=64)
    assert result.failed == []
    np.testing.assert_allclose(result["embedding"], tiny_reference(texts)["embedding"], atol=1e-5)


def test_predict_batched_splits_requests_whose_answer_grpc_refuses_as_too_large(served, tiny_reference):
    """gRPC's own size check ("Received message larger than max") is not transient: bisected, not retried."""
    texts = make_texts(600)  # 600 embeddings of 32 floats: a 77 KB answer
    options = [("grpc.max_receive_message_length", 65536)]
    with GrpcClient(served.grpc_target, retry=None, channel_options=options) as client:
        with pytest.raises(RequestTooLargeError, match="larger than max"):
            client.predict("tiny", texts)
        result = client.predict_batched("tiny", texts, batch_size=600)
    assert result.failed == [] and result.retries == 0
    np.testing.assert_allclose(result["embedding"], tiny_reference(texts)["embedding"], atol=1e-5)


def test_a_row_larger_than_the_limit_alone_is_reported_as_too_large(served):
    texts = make_texts(20)
    texts[7] = "hello " * 5000  # 30 KB
    with GrpcClient(served.grpc_target, max_request_bytes=16 * 1024) as client:
        result = client.predict_batched("tiny", texts, batch_size=8, on_error="return")
    assert result.failed == [7] and isinstance(result.errors[7], RequestTooLargeError)
    assert "max_request_bytes=16384" in result.errors[7].message


def test_grpc_request_larger_than_4_mib_succeeds(grpc_client):
    texts = [("the quick brown fox " * 450)[:8000] + str(i) for i in range(600)]
    request = GrpcCodec(grpc_client.max_request_bytes).predict_request(
        "tiny", {"text": np.array(texts, dtype=object)}, "serving_default", None, None)
    assert request.ByteSize() > 4 * 1024 * 1024
    assert grpc_client.predict("tiny", texts)["embedding"].shape == (600, 32)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_predict_batched_completes_every_row_when_the_server_restarts_mid_run(transport, tiny_model_dir,
                                                                              tiny_reference):
    texts = make_texts(6000)
    expected = tiny_reference(texts)["embedding"]
    retry = RetryPolicy(max_attempts=100, initial_backoff=0.1, max_backoff=1.0)
    with ServerProcess(["--model_name=tiny", f"--model_base_path={tiny_model_dir}"], timeout=300) as server:
        cls, address = (RestClient, server.rest_url) if transport == "rest" else (GrpcClient, server.grpc_target)
        with cls(address, timeout=30, retry=retry) as client:
            client.metadata("tiny")
            box = {}
            run = threading.Thread(target=lambda: box.update(result=client.predict_batched(
                "tiny", texts, batch_size=4, concurrency=2, on_error="return")))
            run.start()
            time.sleep(1.0)
            server.stop(check_exit=False)
            assert run.is_alive(), "the run must still be going when the server stops"
            time.sleep(1.0)
            server.start()
            run.join(300)
    result = box["result"]
    assert result.failed == [], {i: repr(e) for i, e in result.errors.items()}
    assert result.retries > 0
    np.testing.assert_allclose(result["embedding"], expected, atol=1e-5)


# ----------------------------------------------------------------------------- async

def test_async_clients_return_what_the_sync_clients_return(served, rest):
    texts = make_texts(300)
    expected_one = rest.predict("tiny", texts[:5])
    expected_all = rest.predict_batched("tiny", texts, batch_size=32)

    async def main():
        async with AsyncRestClient(served.rest_url) as arest, AsyncGrpcClient(served.grpc_target) as agrpc:
            out = []
            for client in (arest, agrpc):
                status = await client.wait_until_available("tiny", timeout=10)
                one = await client.predict("tiny", texts[:5])
                many = await client.predict_batched("tiny", texts, batch_size=32, concurrency=4)
                meta = await client.metadata("tiny")
                out.append((status, one, many, meta))
            return out

    for status, one, many, meta in asyncio.run(main()):
        assert status == rest.status("tiny") and meta == rest.metadata("tiny")
        np.testing.assert_array_equal(one["embedding"], expected_one["embedding"])
        np.testing.assert_array_equal(many["embedding"], expected_all["embedding"])


def test_async_predict_batched_isolates_the_bad_row(served):
    inputs = tokens_inputs(12)
    inputs["input_ids"][5, 1] = 10**6

    async def main():
        async with AsyncGrpcClient(served.grpc_target) as client:
            return await client.predict_batched("tiny", inputs, signature_name="tokens", batch_size=4,
                                                on_error="return")

    result = asyncio.run(main())
    assert result.failed == [5] and isinstance(result.errors[5], InvalidArgumentError)


# ----------------------------------------------------------------------------- TF Serving compatibility

# The walkthrough's REST and gRPC snippets, verbatim: tests/test_tfserving_walkthrough.py


# ----------------------------------------------------------------------------- CLI

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clients", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_cli_predicts_texts_over_rest_as_jsonl(served, rest):
    done = run_cli("predict", "--model", "tiny", "--host", "127.0.0.1", "--rest-port", str(served.rest_port),
                   "--text", "hello world", "--text", "the quick brown fox")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["index"] for line in lines] == [0, 1]
    expected = rest.predict("tiny", ["hello world", "the quick brown fox"])["embedding"]
    np.testing.assert_allclose([line["outputs"]["embedding"] for line in lines], expected, rtol=1e-6)


def test_cli_predicts_a_text_file_over_grpc_into_an_output_file(served, tmp_path, rest):
    texts = make_texts(50)
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n")
    output = tmp_path / "out.jsonl"
    done = run_cli("predict", "--model", "tiny", "--grpc", "--host", "127.0.0.1", "--grpc-port",
                   str(served.grpc_port), "--input", str(source), "--output", str(output), "--batch-size", "8")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(50))
    np.testing.assert_allclose([line["outputs"]["embedding"] for line in lines],
                               rest.predict("tiny", texts)["embedding"], atol=1e-5)


def test_cli_reads_jsonl_rows_with_named_inputs(served, tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text('{"text": "hello"}\n{"text": "world"}\n')
    done = run_cli("predict", "--model", "tiny", "--host", "127.0.0.1", "--rest-port", str(served.rest_port),
                   "--input", str(source), "--signature", "text")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2


def test_cli_status_and_metadata_print_json(served):
    common = ["--model", "tiny", "--host", "127.0.0.1", "--rest-port", str(served.rest_port)]
    status = run_cli("status", *common)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["versions"][0]["state"] == "AVAILABLE"
    meta = run_cli("metadata", *common)
    assert meta.returncode == 0, meta.stderr
    assert json.loads(meta.stdout)["signatures"]["text"]["inputs"]["text"] == {"dtype": "string", "shape": [None]}


def test_cli_fails_with_the_servers_message_for_an_unknown_model(served):
    done = run_cli("predict", "--model", "nope", "--host", "127.0.0.1", "--rest-port", str(served.rest_port),
                   "--text", "hello")
    assert done.returncode == 1
    assert "NotFoundError" in done.stderr and "Servable not found for request: Latest(nope)" in done.stderr


def test_cli_exits_non_zero_and_names_the_failed_rows(served, tmp_path):
    source = tmp_path / "rows.jsonl"
    rows = [{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "token_type_ids": [0, 0, 0]}] * 3
    rows[1] = dict(rows[1], input_ids=[5, 10**6, 7])
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run_cli("predict", "--model", "tiny", "--host", "127.0.0.1", "--rest-port", str(served.rest_port),
                   "--input", str(source), "--signature", "tokens")
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert ["error" in line for line in lines] == [False, True, False]
    assert lines[1]["error"]["type"] == "InvalidArgumentError"
    assert "1 of 3 rows failed" in done.stderr
