"""clients/: the API surface and the pure conversions (no server needed)."""
from __future__ import annotations

import inspect
import json
import random

import numpy as np
import pytest

import clients
from clients import (AsyncGrpcClient, AsyncRestClient, DeadlineExceededError, GrpcClient,
                     InvalidArgumentError, NotFoundError, ResourceExhaustedError, RestClient,
                     RetryableError, RetryPolicy, UnavailableError, errors_for_status)
from clients._batching import REQUEST_OVERHEAD, _BatchRun, plan_chunks
from clients._grpc import GrpcCodec
from clients._rest import RestCodec
from clients._tensors import (array_to_proto, as_array, cast_to_spec, from_json_value, proto_to_array,
                              to_json_value, TensorSpec)


def _public_methods(cls) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls, callable)
            if not name.startswith("_")}


def test_rest_and_grpc_clients_expose_the_same_methods_with_the_same_signatures():
    rest, grpc_ = _public_methods(RestClient), _public_methods(GrpcClient)
    assert rest == grpc_
    assert {"predict", "predict_batched", "classify", "regress", "metadata", "status",
            "wait_until_available", "close"} <= set(rest)


CLIENTS = (RestClient, GrpcClient, AsyncRestClient, AsyncGrpcClient)


def test_every_client_takes_the_address_first_and_the_same_settings():
    shared = None
    for cls in CLIENTS:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        assert params[0].name == "address" and params[0].kind is params[0].POSITIONAL_OR_KEYWORD, cls
        settings = [(p.name, p.kind, p.default) for p in params[1:4]]
        assert all(kind is inspect.Parameter.KEYWORD_ONLY for _, kind, _ in settings), cls
        shared = shared or settings
        assert settings == shared, cls
    assert [name for name, _, _ in shared] == ["timeout", "max_request_bytes", "retry"]


def test_sync_and_async_twins_take_the_same_constructor_arguments():
    assert inspect.signature(RestClient.__init__) == inspect.signature(AsyncRestClient.__init__)
    assert inspect.signature(GrpcClient.__init__) == inspect.signature(AsyncGrpcClient.__init__)


def test_the_former_address_keywords_url_and_target_still_work():
    with RestClient(url="127.0.0.1:9") as rest, GrpcClient(target="127.0.0.1:9") as grpc_:
        assert (rest.address, rest.url) == ("http://127.0.0.1:9", "http://127.0.0.1:9")
        assert (grpc_.address, grpc_.target) == ("127.0.0.1:9", "127.0.0.1:9")
        assert repr(grpc_).startswith("GrpcClient('127.0.0.1:9', timeout=")


def test_async_clients_expose_the_sync_methods_as_coroutines_with_the_same_signatures():
    sync = _public_methods(RestClient)
    for cls in (AsyncRestClient, AsyncGrpcClient):
        methods = _public_methods(cls)
        assert methods == sync
        for name in methods:
            assert inspect.iscoroutinefunction(getattr(cls, name)), name


def test_all_is_exactly_the_public_names():
    assert sorted(clients.__all__) == sorted(n for n in dir(clients) if not n.startswith("_"))
    assert {"RestClient", "GrpcClient", "AsyncRestClient", "AsyncGrpcClient", "ServingError"} <= set(clients.__all__)


def test_transient_statuses_are_retryable_and_invalid_input_is_not():
    for status in (409, 429, 499, 502, 503, 504):
        assert isinstance(errors_for_status(status, "x"), RetryableError), status
    assert isinstance(errors_for_status(503, "x"), UnavailableError)
    assert isinstance(errors_for_status(504, "x"), DeadlineExceededError)
    assert isinstance(errors_for_status(429, "x"), ResourceExhaustedError)
    for status in (400, 404, 500, 501):
        assert not isinstance(errors_for_status(status, "x"), RetryableError), status


def test_errors_keep_the_servers_message_code_and_http_status():
    err = errors_for_status(404, "Servable not found for request: Latest(nope)")
    assert isinstance(err, NotFoundError)
    assert (str(err), err.code, err.http_status) == ("Servable not found for request: Latest(nope)",
                                                     "NOT_FOUND", 404)


def test_retry_backoff_grows_exponentially_up_to_the_cap_within_the_jitter():
    policy = RetryPolicy(max_attempts=10, initial_backoff=0.5, max_backoff=3.0, multiplier=2.0, jitter=0.25)
    rng = random.Random(0)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert min(delays) >= base * 0.75 and max(delays) <= base * 1.25, attempt
        assert max(delays) - min(delays) > 0, "jitter spreads the retries"
    assert policy.should_retry(9) and not policy.should_retry(10)


def test_retry_policy_refuses_nonsense_settings_with_the_value_received():
    with pytest.raises(ValueError, match="got 0"):
        RetryPolicy(max_attempts=0)


def test_planned_requests_stay_under_the_size_limit_and_the_batch_size():
    sizes = np.array([random.Random(i).randint(10, 3000) for i in range(1000)])
    limit = REQUEST_OVERHEAD + 10_000
    chunks = plan_chunks(sizes, batch_size=16, max_request_bytes=limit)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(sizes)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:])), "contiguous, in order, no row lost"
    for start, stop in chunks:
        assert stop - start <= 16
        assert sizes[start:stop].sum() <= limit - REQUEST_OVERHEAD or stop - start == 1


def _run_all(texts, sort_by_length, bad=()):
    """Drive a batch run by hand: each request answers len(text) per row, or fails for a bad row."""
    run = _BatchRun({"text": np.array(texts, dtype=object)}, row_nbytes=GrpcCodec.row_nbytes, batch_size=4,
                    max_request_bytes=1 << 20, retry=RetryPolicy(), progress=False,
                    sort_by_length=sort_by_length)
    requests = []
    while run.pending:
        chunk = run.pending.popleft()
        rows = list(run.rows_of(chunk)["text"])
        requests.append(rows)
        if any(r in bad for r in rows):
            run.fail(chunk, InvalidArgumentError("bad row"))
        else:
            run.succeed(chunk, {"n": np.array([len(r) for r in rows])})
    return run.result("return"), requests


def test_sorting_by_length_puts_similar_texts_in_one_request_and_answers_in_input_order():
    texts = ["x" * n for n in (30, 2, 31, 1, 29, 3, 32, 4)]
    result, requests = _run_all(texts, sort_by_length=True)
    assert [sorted(map(len, r)) for r in requests] == [[1, 2, 3, 4], [29, 30, 31, 32]]
    assert result["n"].tolist() == [len(t) for t in texts]
    unsorted_result, unsorted_requests = _run_all(texts, sort_by_length=False)
    assert unsorted_requests[0] == texts[:4] and unsorted_result["n"].tolist() == result["n"].tolist()


def test_sorted_runs_report_failed_rows_by_their_input_index():
    texts = ["x" * n for n in (30, 2, 31, 1, 29, 3, 32, 4)]
    result, _ = _run_all(texts, sort_by_length=True, bad={"x" * 31})
    assert result.failed == [2]
    assert result["n"][result.ok].tolist() == [len(t) for i, t in enumerate(texts) if i != 2]


def test_grpc_size_estimate_of_text_rows_matches_the_serialized_tensor():
    from tensorflow.core.framework import tensor_pb2

    texts = as_array(["short", "ü" * 300, "x" * 70_000])
    for i in range(3):
        proto = array_to_proto(texts[i:i + 1], tensor_pb2.TensorProto())
        empty = array_to_proto(texts[0:0], tensor_pb2.TensorProto())
        assert abs(int(GrpcCodec.row_nbytes(texts)[i]) - (proto.ByteSize() - empty.ByteSize())) <= 3


@pytest.mark.parametrize("value", [
    np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    np.array([[1, -2], [3, 2**31 - 1]], dtype=np.int32),
    np.array([2**40, -5], dtype=np.int64),
    np.array([True, False]),
    np.array([0.5, -1.25], dtype=np.float16),
    np.array([1.0, 2.0], dtype=np.float64),
    np.array([3, 200], dtype=np.uint8),
], ids=lambda v: str(v.dtype))
def test_tensor_protos_built_from_numpy_read_back_the_same_in_tensorflow_and_here(value):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    proto = array_to_proto(value, tensor_pb2.TensorProto())
    np.testing.assert_array_equal(tf.make_ndarray(proto), value)
    back = proto_to_array(proto)
    assert back.dtype == value.dtype and back.shape == value.shape
    np.testing.assert_array_equal(back, value)


@pytest.mark.parametrize("value", [
    np.array([[1.5, -2.0], [0.25, 8.0]], dtype=np.float32),
    np.array([1, 2, 3], dtype=np.int32),
    np.array([7, 8], dtype=np.int64),
    np.array([0.5, 1.5], dtype=np.float16),
    np.array([b"a", b"\xff\x00"], dtype=object),
], ids=lambda v: str(v.dtype))
def test_tensor_protos_written_with_typed_value_fields_are_read(value):
    """TF Serving answers with float_val/int_val/... (what tf.make_tensor_proto writes for lists)."""
    import tensorflow as tf

    proto = tf.make_tensor_proto(value.tolist(), dtype=tf.as_dtype(value.dtype if value.dtype != object else tf.string),
                                 shape=value.shape)
    np.testing.assert_array_equal(proto_to_array(proto), value)


def test_a_single_typed_value_fills_the_whole_shape_as_in_tensorflow():
    import tensorflow as tf

    proto = tf.make_tensor_proto(1.5, dtype=tf.float32, shape=[2, 3])
    np.testing.assert_array_equal(proto_to_array(proto), np.full((2, 3), 1.5, np.float32))


def test_text_goes_to_json_as_strings_and_bytes_as_b64():
    assert to_json_value(as_array(["héllo", b"\x00\xff"])) == ["héllo", {"b64": "AP8="}]
    assert to_json_value(as_array([["a", "b"]])) == [["a", "b"]]


def test_json_string_outputs_read_back_as_bytes_whichever_encoding():
    out = from_json_value([["pos", {"b64": "AP8="}]], "string")
    assert out.dtype == object and out.shape == (1, 2)
    assert out.tolist() == [[b"pos", b"\x00\xff"]]


def test_inputs_are_cast_to_the_signatures_dtype():
    ids = cast_to_spec("input_ids", as_array([[101, 2023, 102]]), TensorSpec("int32", (None, None)))
    assert ids.dtype == np.int32


def test_inputs_that_would_be_truncated_are_refused_with_the_input_name():
    with pytest.raises(TypeError, match="'input_ids' is int32; got float64"):
        cast_to_spec("input_ids", as_array([[1.5]]), TensorSpec("int32", (None, None)))
    with pytest.raises(TypeError, match="'text' is a string tensor"):
        cast_to_spec("text", as_array([1, 2]), TensorSpec("string", (None,)))


def test_clients_refuse_a_version_and_a_label_together():
    with RestClient("http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match="not both"):
            client.predict("m", ["x"], version=1, label="stable")


def test_invalid_argument_is_not_retryable():
    assert not issubclass(InvalidArgumentError, RetryableError)


def test_rest_classify_and_regress_read_tf_servings_results_and_the_older_result_key():
    codec = RestCodec("http://localhost:8501", 1 << 20, "columnar")
    for key in ("results", "result"):
        classified = codec.examples_response("classify", 200, json.dumps(
            {key: [[["neg", 0.25], ["pos", 0.75]]]}).encode())
        assert classified["classes"].tolist() == [[b"neg", b"pos"]]
        assert classified["scores"].tolist() == [[0.25, 0.75]]
        regressed = codec.examples_response("regress", 200, json.dumps({key: [1.5, -2.0]}).encode())
        assert regressed["outputs"].tolist() == [1.5, -2.0]


@pytest.mark.parametrize("module", ["clients._config", "clients._errors", "clients._tensors",
                                    "clients._metadata", "clients._batching", "clients._base",
                                    "clients._rest", "clients._grpc", "clients._protos"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


@pytest.fixture
def server_without_metadata():
    """A REST server that predicts but answers metadata with 501 (as some TF Serving front ends do)."""
    import http.server
    import threading

    calls = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            calls.append(self.path)
            self._answer(501, {"error": "metadata is not implemented here"})

        def do_POST(self):
            calls.append(self.path)
            self.rfile.read(int(self.headers["Content-Length"]))
            self._answer(200, {"outputs": [[1.0, 2.0]]})

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", calls
    server.shutdown()
    server.server_close()


def test_a_server_without_metadata_is_asked_for_it_once_not_on_every_predict(server_without_metadata):
    import asyncio

    url, calls = server_without_metadata
    with RestClient(url) as client:
        for _ in range(3):
            assert client.predict("m", {"x": [[1.0, 2.0]]})["outputs"].tolist() == [[1.0, 2.0]]

    async def three_async_predicts():
        async with AsyncRestClient(url) as aclient:
            for _ in range(3):
                await aclient.predict("m", {"x": [[1.0, 2.0]]})

    asyncio.run(three_async_predicts())
    metadata_calls = [path for path in calls if path.endswith("/metadata")]
    assert metadata_calls == ["/v1/models/m/metadata"] * 2, calls
    assert len(calls) == 8
