"""REST and gRPC requests sharing one batching queue: deadlines and fairness.

The `spin` model busy-waits, in the graph, for max(x) seconds (`tf.timestamp`
in a while loop), so a run's length is set by the request, not by the
machine's speed; its `rows` output says how many rows the run had (4: the
requests were merged into one batch).
"""
from __future__ import annotations

import json
import threading
import time

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import protocol
from server import ServerProcess

BATCHING = """max_batch_size { value: 8 }
batch_timeout_micros { value: 1500000 }
num_batch_threads { value: 1 }
max_enqueued_batches { value: 100 }
"""


def _build_spin_model(path: str) -> None:
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        x = v1.placeholder(tf.float32, [None], name="x")
        start = tf.timestamp()
        seconds = tf.cast(tf.reduce_max(x), tf.float64)
        spun = v1.while_loop(lambda i: tf.timestamp() < start + seconds, lambda i: i + 1, [tf.constant(0)])
        with tf.control_dependencies([spun]):
            y = tf.identity(x, name="y")
            rows = tf.fill(tf.shape(x), tf.shape(x)[0], name="rows")
        sig = v1.saved_model.signature_def_utils.predict_signature_def({"x": x}, {"y": y, "rows": rows})
        with v1.Session() as sess:
            builder = v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(sess, [protocol.SERVE_TAG],
                                                 signature_def_map={protocol.DEFAULT_SIGNATURE: sig})
            builder.save()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("spin")
    _build_spin_model(str(base / "spin" / "1"))
    (base / "batching.config").write_text(BATCHING)
    with ServerProcess([f"--model_name=spin", f"--model_base_path={base / 'spin'}", "--enable_batching",
                        f"--batching_parameters_file={base / 'batching.config'}",
                        "--rest_api_timeout_in_ms=30000"]) as s:
        yield s


def _grpc_predict(srv, seconds: float, deadline: float, out: dict) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "spin"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([seconds], tf.float32))
    with grpc.insecure_channel(srv.grpc_target) as channel:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=deadline)
            out["grpc"] = grpc.StatusCode.OK
        except grpc.RpcError as e:
            out["grpc"] = e.code()


def _rest_predict(srv, seconds: float, out: dict, i: int) -> None:
    r = requests.post(srv.rest_url + "/v1/models/spin:predict", data=json.dumps({"instances": [seconds]}),
                      timeout=60)
    out[i] = (r.status_code, r.json())


def _merged_calls(srv, spin: float, grpc_deadline: float) -> dict:
    """One gRPC call (first, so the batch waits from its arrival) and three REST calls."""
    out: dict = {}
    threads = [threading.Thread(target=_grpc_predict, args=(srv, spin, grpc_deadline, out))]
    threads += [threading.Thread(target=_rest_predict, args=(srv, spin, out, i)) for i in range(3)]
    threads[0].start()
    time.sleep(0.2)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join()
    return out


def test_short_grpc_deadline_does_not_fail_the_rest_calls_batched_with_it(srv):
    # The batch starts 1.5 s after the gRPC call, with 1.5 s of its deadline
    # left, and runs 4 s: under the earliest deadline all four failed.
    out = _merged_calls(srv, spin=4.0, grpc_deadline=3.0)
    assert [out[i] for i in range(3)] == [(200, {"predictions": [{"y": 4.0, "rows": 4}]})] * 3
    assert out["grpc"] == grpc.StatusCode.DEADLINE_EXCEEDED


def test_task_whose_deadline_passed_in_the_queue_fails_alone(srv):
    out = _merged_calls(srv, spin=1.0, grpc_deadline=0.5)
    assert [out[i] for i in range(3)] == [(200, {"predictions": [{"y": 1.0, "rows": 3}]})] * 3
    assert out["grpc"] == grpc.StatusCode.DEADLINE_EXCEEDED
