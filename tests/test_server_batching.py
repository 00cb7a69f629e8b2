"""`--enable_batching` merges concurrent requests per BatchingParameters and
splits results back; `--monitoring_config_file` exposes Prometheus metrics on
the REST port. One real server process with both."""
from __future__ import annotations

import re
import threading

import pytest
import requests

from server import ServerProcess

BATCHING = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 1000000 }
max_enqueued_batches { value: 4 }
num_batch_threads { value: 2 }
allowed_batch_sizes: 2
allowed_batch_sizes: 8
pad_variable_length_inputs: true
"""
MONITORING = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }'


@pytest.fixture(scope="module")
def srv(server_models, tmp_path_factory):
    models = server_models
    tmp = tmp_path_factory.mktemp("batching")
    (tmp / "batching.config").write_text(BATCHING)
    (tmp / "monitoring.config").write_text(MONITORING)
    with ServerProcess(["--model_name=hpt", f"--model_base_path={models}/hpt", "--enable_batching=true",
                        f"--batching_parameters_file={tmp}/batching.config",
                        f"--monitoring_config_file={tmp}/monitoring.config",
                        "--file_system_poll_wait_seconds=0"]) as s:
        yield s


def probe(srv, xs, signature="probe"):
    r = requests.post(srv.rest_url + "/v1/models/hpt:predict",
                      json={"signature_name": signature, "instances": xs}, timeout=60)
    return r.status_code, r.json()


def test_concurrent_requests_run_as_one_batch_and_get_their_own_rows(srv):
    results = {}

    def call(i):
        results[i] = probe(srv, [float(i), float(i) + 0.5])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        status, body = results[i]
        assert status == 200
        # 4 requests x 2 rows fill max_batch_size 8: one run saw all 8 rows.
        assert body["predictions"] == [{"batch_size": 8, "y": i * 0.5 + 3.0},
                                       {"batch_size": 8, "y": (i + 0.5) * 0.5 + 3.0}]


def test_a_batch_is_padded_up_to_the_next_allowed_batch_size(srv):
    # One request of 3 rows; the 1 s timeout closes the batch, padded to 8 rows.
    status, body = probe(srv, [1.0, 2.0, 3.0])
    assert status == 200
    assert [p["batch_size"] for p in body["predictions"]] == [8, 8, 8]
    assert [p["y"] for p in body["predictions"]] == [3.5, 4.0, 4.5]


def test_variable_length_inputs_are_padded_with_the_first_element_when_batched(srv):
    results = {}

    def call(i, rows):
        r = requests.post(srv.rest_url + "/v1/models/hpt:predict",
                          json={"signature_name": "ragged", "instances": rows}, timeout=60)
        results[i] = (r.status_code, r.json())
    threads = [threading.Thread(target=call, args=(0, [[7.0, 2.0]])),
               threading.Thread(target=call, args=(1, [[1.0, 2.0, 3.0]]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Both ran in one batch of width 3; TF Serving pads with the tensor's first element.
    assert results[0] == (200, {"predictions": [{"width": 3, "v_out": [7.0, 2.0, 7.0]}]})
    assert results[1] == (200, {"predictions": [{"width": 3, "v_out": [1.0, 2.0, 3.0]}]})


def test_a_request_larger_than_max_batch_size_is_refused(srv):
    status, body = probe(srv, [1.0] * 9)
    assert status == 400
    assert body["error"].startswith("Task size 9 is larger than maximum input batch size 8")


def _metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{want}}} in metrics:\n{text[:2000]}")


def metrics(srv):
    r = requests.get(srv.rest_url + "/monitoring/prometheus/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    return r.text


def test_metrics_count_requests_per_model_and_status(srv):
    before = metrics(srv)
    try:
        ok_before = _metric(before, ":tensorflow:serving:request_count", model_name="hpt", status="OK")
    except AssertionError:
        ok_before = 0.0
    probe(srv, [1.0, 2.0], signature="serving_default")
    requests.post(srv.rest_url + "/v1/models/hpt:predict", json={"instances": ["x"]}, timeout=60)
    after = metrics(srv)
    assert _metric(after, ":tensorflow:serving:request_count", model_name="hpt", status="OK") == ok_before + 1
    assert _metric(after, ":tensorflow:serving:request_count", model_name="hpt",
                   status="INVALID_ARGUMENT") >= 1
    assert _metric(after, ":tensorflow:serving:embedded:requests", model_name="hpt",
                   signature_name="serving_default", API="predict", entrypoint="REST", status="OK") >= 1


def test_metrics_have_latency_histograms_batch_sizes_and_version_state(srv):
    probe(srv, [1.0])
    text = metrics(srv)
    assert _metric(text, ":tensorflow:serving:request_latency_count", model_name="hpt",
                   API="predict", entrypoint="REST") >= 1
    assert _metric(text, ":tensorflow:serving:embedded:batch_size_count", model_name="hpt") >= 1
    assert re.search(r':tensorflow:serving:embedded:batch_queue_depth\{model_name="hpt"\} \d', text)
    assert _metric(text, ":tensorflow:serving:embedded:model_version_state", model_name="hpt",
                   version="2", state="AVAILABLE") == 1


def test_metadata_and_status_calls_are_counted_per_front_end(srv):
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

    requests.get(srv.rest_url + "/v1/models/hpt/metadata", timeout=30).raise_for_status()
    requests.get(srv.rest_url + "/v1/models/hpt", timeout=30).raise_for_status()
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "hpt"
    with grpc.insecure_channel(srv.grpc_target) as ch:
        prediction_service_pb2_grpc.PredictionServiceStub(ch).GetModelMetadata(req, timeout=30)
    text = metrics(srv)
    for api, entrypoint in (("metadata", "REST"), ("status", "REST"), ("metadata", "GRPC")):
        assert _metric(text, ":tensorflow:serving:request_latency_count", model_name="hpt",
                       API=api, entrypoint=entrypoint) >= 1
