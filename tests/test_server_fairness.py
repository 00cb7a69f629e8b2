"""REST and gRPC requests sharing one batching queue: deadlines and fairness.

The `spin` model busy-waits, in the graph, for max(x) seconds (`tf.timestamp`
in a while loop), so a run's length is set by the request, not by the
machine's speed; its `rows` output says how many rows the run had (4: the
requests were merged into one batch).

The ordering tests run one request at a time through the model (one batch
thread, batches of one row), so the order in which requests finish is the
order in which they were let through to the model.
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


# One run at a time, in the order the batching queue got the requests.
ONE_AT_A_TIME = """max_batch_size { value: 1 }
batch_timeout_micros { value: 0 }
num_batch_threads { value: 1 }
max_enqueued_batches { value: 100 }
"""


@pytest.fixture(scope="module")
def spin_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("spin")
    _build_spin_model(str(base / "spin" / "1"))
    return base


def _serve(base, batching: str, *flags) -> ServerProcess:
    config = base / f"batching-{abs(hash(batching))}.config"
    config.write_text(batching)
    return ServerProcess([f"--model_name=spin", f"--model_base_path={base / 'spin'}", "--enable_batching",
                          f"--batching_parameters_file={config}", *flags])


@pytest.fixture(scope="module")
def srv(spin_dir):
    with _serve(spin_dir, BATCHING, "--rest_api_timeout_in_ms=30000") as s:
        yield s


@pytest.fixture(scope="module")
def serial_srv(spin_dir):
    # Two requests at a time per front end's own limit: enough for others to
    # be waiting while the model works through the first ones.
    with _serve(spin_dir, ONE_AT_A_TIME, "--rest_api_num_threads=2", "--grpc_max_threads=2",
                "--rest_api_timeout_in_ms=30000") as s:
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


class _Caller:
    """One client with its connection already open (so a call's start-up cost
    cannot reorder arrivals): `call()` sends one 0.3 s spin request."""

    def __init__(self, srv, transport: str, seconds: float = 0.3):
        self.transport, self.seconds = transport, seconds
        if transport == "grpc":
            self.channel = grpc.insecure_channel(srv.grpc_target)
            grpc.channel_ready_future(self.channel).result(timeout=30)
            self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        else:
            self.url = srv.rest_url + "/v1/models/spin"
            self.session = requests.Session()
            self.session.get(self.url, timeout=30).raise_for_status()

    def call(self) -> None:
        if self.transport == "grpc":
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "spin"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto([self.seconds], tf.float32))
            self.stub.Predict(request, timeout=60)
        else:
            r = self.session.post(self.url + ":predict", data=json.dumps({"instances": [self.seconds]}),
                                  timeout=60)
            assert r.status_code == 200, r.text

    def close(self) -> None:
        (self.channel if self.transport == "grpc" else self.session).close()


def _finish_order(srv, transports: list[str], gap: float = 0.08) -> list[str]:
    """Start one call per entry of `transports`, `gap` seconds apart; the
    callers' names ("rest0", "grpc0", ...) in the order their calls finished."""
    callers = {}
    for t in transports:
        callers[f"{t}{sum(1 for n in callers if n.startswith(t))}"] = _Caller(srv, t)
    done: dict = {}

    def run(name):
        try:
            callers[name].call()
            done[name] = ("ok", time.monotonic())
        except Exception as e:  # the assertion below shows it
            done[name] = (repr(e), time.monotonic())
    threads = []
    for name in callers:
        threads.append(threading.Thread(target=run, args=(name,)))
        threads[-1].start()
        time.sleep(gap)
    for t in threads:
        t.join()
    for c in callers.values():
        c.close()
    assert all(status == "ok" for status, _ in done.values()), done
    return sorted(done, key=lambda name: done[name][1])


def test_requests_reach_the_model_in_arrival_order_whichever_front_end(serial_srv):
    # Six REST calls, then three gRPC calls, each running 0.3 s: more than
    # either front end's own limit of two wait at once. With a line per front
    # end, the gRPC calls overtook the REST calls still waiting for one of
    # REST's two places (finishing [rest0, rest1, rest2, grpc0, grpc1, rest3, ...]).
    order = ["rest"] * 6 + ["grpc"] * 3
    assert _finish_order(serial_srv, order) == ["rest0", "rest1", "rest2", "rest3", "rest4", "rest5",
                                                "grpc0", "grpc1", "grpc2"]


def test_grpc_calls_are_not_held_back_behind_later_rest_calls(serial_srv):
    order = ["grpc"] * 5 + ["rest"] * 3
    assert _finish_order(serial_srv, order) == ["grpc0", "grpc1", "grpc2", "grpc3", "grpc4",
                                                "rest0", "rest1", "rest2"]
