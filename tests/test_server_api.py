"""`python -m server` speaks TF Serving's REST and gRPC APIs (api_rest.md, the
tensorflow-serving-api protos): formats, versions, labels, errors. One real
server process over real sockets for the whole module."""
from __future__ import annotations

import base64
import gzip
import http.client
import json
import math

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     inference_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

import protocol
from tests._server_models import hpt_server


@pytest.fixture(scope="module")
def srv(server_models, tmp_path_factory):
    with hpt_server(server_models, tmp_path_factory.mktemp("api")) as s:
        yield s


@pytest.fixture(scope="module")
def stub(srv):
    opts = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(srv.grpc_target, options=opts) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_stub(srv):
    with grpc.insecure_channel(srv.grpc_target) as channel:
        yield model_service_pb2_grpc.ModelServiceStub(channel)


def post(srv, path, body, raw=False):
    data = body if raw else json.dumps(body)
    return requests.post(srv.rest_url + path, data=data, timeout=30)


def predict_request(x, name="hpt", signature="", version=None, label=None):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    if label is not None:
        req.model_spec.version_label = label
    if x is not None:
        req.inputs["x"].CopyFrom(tf.make_tensor_proto(x, tf.float32))
    return req


def examples_input(target, xs):
    for x in xs:
        target.example_list.examples.add().features.feature["x"].float_list.value.append(x)


def grpc_error(fn, request):
    with pytest.raises(grpc.RpcError) as e:
        fn(request, timeout=30)
    return e.value.code(), e.value.details()


# -------------------------------------------------------------------- warmup

def test_warmup_records_are_replayed_before_the_version_is_available(srv):
    # warm/1 has 3 warmup records calling the "count" signature: this is run 4.
    r = post(srv, "/v1/models/warm:predict", {"signature_name": "count", "instances": [1.0]})
    assert r.json() == {"predictions": [4]}


# -------------------------------------------------------------------- REST: status/metadata

def test_rest_status_lists_every_version_newest_first(srv):
    r = requests.get(srv.rest_url + "/v1/models/hpt", timeout=10)
    assert r.status_code == 200
    ok = {"error_code": "OK", "error_message": ""}
    assert r.json() == {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": ok},
        {"version": "1", "state": "AVAILABLE", "status": ok}]}


def test_rest_status_of_a_version_and_of_a_label(srv):
    v1 = requests.get(srv.rest_url + "/v1/models/hpt/versions/1", timeout=10).json()
    canary = requests.get(srv.rest_url + "/v1/models/hpt/labels/canary", timeout=10).json()
    assert [s["version"] for s in v1["model_version_status"]] == ["1"]
    assert [s["version"] for s in canary["model_version_status"]] == ["2"]


def test_rest_status_of_unknown_model_is_404(srv):
    r = requests.get(srv.rest_url + "/v1/models/nope", timeout=10)
    assert (r.status_code, r.json()) == (404, {"error": "Could not find any versions of model nope"})


def test_rest_metadata_has_the_signature_defs_of_the_resolved_version(srv):
    r = requests.get(srv.rest_url + "/v1/models/hpt/versions/1/metadata", timeout=10)
    body = r.json()
    assert body["model_spec"] == {"name": "hpt", "version": "1", "signature_name": ""}
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert sigs["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert sigs["classify_x_to_y"]["method_name"] == protocol.CLASSIFY_METHOD


# -------------------------------------------------------------------- REST: predict

def test_rest_predict_row_format_uses_the_latest_version(srv):
    r = post(srv, "/v1/models/hpt:predict", {"instances": [1.0, 2.0, 5.0]})
    assert (r.status_code, r.json()) == (200, {"predictions": [3.5, 4.0, 5.5]})


def test_rest_predict_specific_version(srv):
    r = post(srv, "/v1/models/hpt/versions/1:predict", {"instances": [1.0, 2.0]})
    assert r.json() == {"predictions": [2.5, 3.0]}


def test_rest_predict_by_version_label(srv):
    assert post(srv, "/v1/models/hpt/labels/stable:predict", {"instances": [1.0]}).json() == {"predictions": [2.5]}
    assert post(srv, "/v1/models/hpt/labels/canary:predict", {"instances": [1.0]}).json() == {"predictions": [3.5]}


def test_rest_predict_columnar_format_returns_outputs(srv):
    r = post(srv, "/v1/models/hpt:predict", {"inputs": {"x": [1.0, 2.0]}})
    assert r.json() == {"outputs": [3.5, 4.0]}


def test_rest_predict_columnar_unnamed_input(srv):
    assert post(srv, "/v1/models/hpt:predict", {"inputs": [4.0]}).json() == {"outputs": [5.0]}


def test_rest_named_instances_with_several_outputs_give_one_object_per_row(srv):
    body = {"signature_name": "mixed",
            "instances": [{"x": 1.0, "n": 2, "s": "a"}, {"x": 3.0, "n": 5, "s": "bé"}]}
    r = post(srv, "/v1/models/hpt:predict", body)
    assert r.json() == {"predictions": [
        {"y": 3.5, "n2": 4, "s_out": "a", "s_bytes": {"b64": base64.b64encode(b"a").decode()}},
        {"y": 4.5, "n2": 10, "s_out": "bé", "s_bytes": {"b64": base64.b64encode("bé".encode()).decode()}}]}


def test_rest_columnar_several_outputs_is_an_object_of_tensors(srv):
    body = {"signature_name": "mixed", "inputs": {"x": [1.0], "n": [7], "s": ["z"]}}
    out = post(srv, "/v1/models/hpt:predict", body).json()["outputs"]
    assert out == {"y": [3.5], "n2": [14], "s_out": ["z"], "s_bytes": [{"b64": "eg=="}]}


def test_rest_b64_input_reaches_the_model_as_bytes(srv):
    raw = bytes([0, 255, 10])
    body = {"signature_name": "mixed",
            "inputs": {"x": [1.0], "n": [1], "s": [{"b64": base64.b64encode(raw).decode()}]}}
    out = post(srv, "/v1/models/hpt:predict", body).json()["outputs"]
    assert base64.b64decode(out["s_bytes"][0]["b64"]) == raw


def test_rest_two_dimensional_input(srv):
    r = post(srv, "/v1/models/hpt:predict", {"signature_name": "matrix", "instances": [[1, 2], [3, 4.5]]})
    assert r.json() == {"predictions": [3.0, 7.5]}


def test_rest_nan_and_infinity_are_json_literals(srv):
    r = post(srv, "/v1/models/hpt:predict", '{"instances": [NaN, Infinity, -Infinity]}', raw=True)
    assert r.status_code == 200
    assert "NaN" in r.text and "-Infinity" in r.text
    values = json.loads(r.text)["predictions"]
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf


def test_rest_gzip_request_body_is_accepted(srv):
    data = gzip.compress(json.dumps({"instances": [1.0]}).encode())
    r = requests.post(srv.rest_url + "/v1/models/hpt:predict", data=data,
                      headers={"Content-Encoding": "gzip"}, timeout=10)
    assert r.json() == {"predictions": [3.5]}


def test_rest_chunked_request_body_is_accepted(srv):
    chunks = (part for part in (b'{"instances": ', b'[1.0, ', b'2.0]}'))
    r = requests.post(srv.rest_url + "/v1/models/hpt:predict", data=chunks, timeout=10)
    assert r.json() == {"predictions": [3.5, 4.0]}


def test_rest_large_body_with_expect_100_continue(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.rest_port, timeout=10)
    body = json.dumps({"instances": [1.0] * 5000}).encode()
    conn.request("POST", "/v1/models/hpt:predict", body=body, headers={"Expect": "100-continue"})
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["predictions"] == [3.5] * 5000
    conn.close()


def test_rest_connection_is_kept_alive_between_requests(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.rest_port, timeout=10)
    bodies = []
    for _ in range(3):
        conn.request("POST", "/v1/models/hpt:predict", body=json.dumps({"instances": [1.0]}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        bodies.append(json.loads(resp.read()))
        assert resp.getheader("Connection") != "close"
    sock = conn.sock
    assert sock is not None and bodies == [{"predictions": [3.5]}] * 3
    conn.close()


# -------------------------------------------------------------------- REST: classify/regress

def test_rest_classify_returns_label_score_pairs(srv):
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}, {"x": [4.0]}]}
    r = post(srv, "/v1/models/hpt/versions/1:classify", body)
    assert r.json() == {"results": [[["y", 2.5]], [["y", 4.0]]]}


def test_rest_regress_returns_one_value_per_example(srv):
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}, {"x": 6.0}]}
    assert post(srv, "/v1/models/hpt:regress", body).json() == {"results": [4.0, 6.0]}


def test_rest_regress_context_features_apply_to_every_example(srv):
    body = {"signature_name": "regress_x_to_y", "context": {"x": 2.0}, "examples": [{}, {"x": 4.0}]}
    assert post(srv, "/v1/models/hpt:regress", body).json() == {"results": [4.0, 5.0]}


# -------------------------------------------------------------------- REST: errors

@pytest.mark.parametrize("path, body, status, message", [
    ("/v1/models/hpt:predict", "{not json", 400, "JSON Parse error"),
    ("/v1/models/hpt:predict", {"instances": ["a"]}, 400,
     'JSON Value: "a" Type: String is not of expected type: float'),
    ("/v1/models/hpt:predict", {"instances": [1.5], "signature_name": "nope"}, 400,
     'Serving signature key "nope" not found.'),
    ("/v1/models/hpt:predict", {"signature_name": "matrix", "inputs": [1.0, 2.0, 3.0]}, 400,
     "input 'm' has shape [3] but the signature expects [-1,2]"),
    ("/v1/models/hpt:predict", {"signature_name": "mixed", "instances": [{"x": 1.0, "s": "a"}]}, 400,
     "Missing but required: {n}."),
    ("/v1/models/hpt:predict", {"inputs": {"x": [1.0], "z": [2.0]}}, 400,
     "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}."),
    ("/v1/models/hpt:predict", {"signature_name": "matrix", "instances": [[1.0, 2.0], [3.0]]}, 400,
     "all rows must have the same length"),
    ("/v1/models/hpt:predict", {"signature_name": "mixed",
                                "inputs": {"x": [1.0], "n": [1], "s": [{"b64": "***"}]}}, 400,
     "Unable to base64 decode"),
    ("/v1/models/hpt:predict", {"instances": []}, 400, "'instances' is an empty list/array"),
    ("/v1/models/hpt:predict", {"signature_name": "mixed", "inputs": {"x": [1.0], "n": [1.5], "s": ["a"]}},
     400, "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    ("/v1/models/hpt:predict", {"instances": [1.0], "inputs": [1.0]}, 400, "Not both 'inputs' and 'instances'"),
    ("/v1/models/hpt:predict", {"signature": "x"}, 400, "Missing 'inputs' or 'instances' key"),
    ("/v1/models/nope:predict", {"instances": [1.0]}, 404, "Servable not found for request: Latest(nope)"),
    ("/v1/models/hpt/versions/3:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Specific(hpt, 3)"),
    ("/v1/models/hpt/labels/beta:predict", {"instances": [1.0]}, 400,
     "Unrecognized servable version label: beta"),
    ("/v1/models/hpt:classify", {"signature_name": "classify_x_to_y", "examples": []}, 400, "Input is empty."),
    ("/v1/models/hpt:classify", {"signature_name": "nope", "examples": [{"x": 1.0}]}, 400,
     "No signature was found with the name: nope"),
    ("/v1/models/hpt:explain", {"instances": [1.0]}, 404, "Malformed request: POST /v1/models/hpt:explain"),
], ids=["malformed-json", "wrong-dtype", "unknown-signature", "wrong-shape", "missing-input",
        "extra-input", "unequal-rows", "invalid-b64", "empty-batch", "float-for-int", "both-formats",
        "no-inputs", "unknown-model", "unknown-version", "unknown-label", "classify-empty",
        "classify-unknown-signature", "unknown-verb"])
def test_rest_bad_request_gets_tf_serving_error_and_status(srv, path, body, status, message):
    r = post(srv, path, body, raw=isinstance(body, str))
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"}
    assert message in r.json()["error"]


def test_rest_server_keeps_serving_after_bad_requests(srv):
    for bad in ("{", '{"instances": [[1], [2, 3]]}', '{"instances": "x"}'):
        assert post(srv, "/v1/models/hpt:predict", bad, raw=True).status_code == 400
    assert post(srv, "/v1/models/hpt:predict", {"instances": [1.0]}).json() == {"predictions": [3.5]}


# -------------------------------------------------------------------- gRPC

def test_grpc_predict_returns_typed_values_and_the_resolved_spec(stub):
    resp = stub.Predict(predict_request([1.0, 2.0]), timeout=30)
    assert list(resp.outputs["y"].float_val) == [3.5, 4.0]
    assert (resp.model_spec.name, resp.model_spec.version.value,
            resp.model_spec.signature_name) == ("hpt", 2, "serving_default")


def test_grpc_predict_by_version_and_by_label(stub):
    assert list(stub.Predict(predict_request([1.0], version=1)).outputs["y"].float_val) == [2.5]
    resp = stub.Predict(predict_request([1.0], label="stable"))
    assert list(resp.outputs["y"].float_val) == [2.5] and resp.model_spec.version.value == 1


def test_grpc_predict_strings_and_output_filter(stub):
    req = predict_request([1.0], signature="mixed")
    req.inputs["n"].CopyFrom(tf.make_tensor_proto([3], tf.int32))
    req.inputs["s"].CopyFrom(tf.make_tensor_proto([b"\x00q"]))
    req.output_filter.extend(["s_out", "n2"])
    resp = stub.Predict(req, timeout=30)
    assert sorted(resp.outputs) == ["n2", "s_out"]
    assert list(resp.outputs["s_out"].string_val) == [b"\x00q"]
    assert list(resp.outputs["n2"].int_val) == [6]


def test_grpc_has_no_4mib_message_limit(stub):
    x = np.arange(1_500_000, dtype=np.float32)  # 6 MB each way
    resp = stub.Predict(predict_request(x), timeout=60)
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["y"]), 0.5 * x + 3.0)


def test_grpc_classify(stub):
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name, req.model_spec.signature_name = "hpt", "classify_x_to_y"
    examples_input(req.input, [1.0, 3.0])
    resp = stub.Classify(req, timeout=30)
    got = [[(c.label, c.score) for c in cl.classes] for cl in resp.result.classifications]
    assert got == [[("y", 3.5)], [("y", 4.5)]] and resp.model_spec.version.value == 2


def test_grpc_regress(stub):
    req = regression_pb2.RegressionRequest()
    req.model_spec.name, req.model_spec.signature_name = "hpt", "regress_x_to_y"
    req.model_spec.version.value = 1
    examples_input(req.input, [2.0])
    assert [r.value for r in stub.Regress(req, timeout=30).result.regressions] == [3.0]


def test_grpc_multi_inference_runs_every_task(stub):
    req = inference_pb2.MultiInferenceRequest()
    for sig, method in (("classify_x_to_y", protocol.CLASSIFY_METHOD),
                        ("regress_x_to_y", protocol.REGRESS_METHOD)):
        task = req.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = "hpt", sig
    examples_input(req.input, [2.0])
    resp = stub.MultiInference(req, timeout=30)
    assert resp.results[0].classification_result.classifications[0].classes[0].score == 4.0
    assert resp.results[1].regression_result.regressions[0].value == 4.0


def test_grpc_metadata_packs_the_signature_def_map(stub):
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "hpt"
    resp = stub.GetModelMetadata(req, timeout=30)
    sigs = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(sigs)
    assert resp.model_spec.version.value == 2
    assert sigs.signature_def["regress_x_to_y"].method_name == protocol.REGRESS_METHOD


def test_grpc_model_status(model_stub):
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "hpt"
    resp = model_stub.GetModelStatus(req, timeout=30)
    avail = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert [(s.version, s.state) for s in resp.model_version_status] == [(2, avail), (1, avail)]


def test_grpc_health_service_reports_serving(srv):
    with grpc.insecure_channel(srv.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "tensorflow.serving.PredictionService"):
            resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def _mixed_missing_n():
    req = predict_request([1.0], signature="mixed")
    req.inputs["s"].CopyFrom(tf.make_tensor_proto([b"a"]))
    return req


def _wrong_dtype():
    req = predict_request(None)
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(["a"]))
    return req


def _matrix_rank_1():
    req = predict_request(None, signature="matrix")
    req.inputs["m"].CopyFrom(tf.make_tensor_proto([1.0, 2.0, 3.0], tf.float32))
    return req


def _bad_filter():
    req = predict_request([1.0])
    req.output_filter.append("nope")
    return req


def _empty_classify():
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name, req.model_spec.signature_name = "hpt", "classify_x_to_y"
    return req


@pytest.mark.parametrize("make, code, message", [
    (lambda: predict_request([1.0], name="nope"), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    (lambda: predict_request([1.0], version=9), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(hpt, 9)"),
    (lambda: predict_request([1.0], label="beta"), grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: beta"),
    (lambda: predict_request([1.0], signature="nope"), grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
    (_wrong_dtype, grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be float but string is provided"),
    (_mixed_missing_n, grpc.StatusCode.INVALID_ARGUMENT, "Missing but required: {n}."),
    (_bad_filter, grpc.StatusCode.INVALID_ARGUMENT, "output tensor alias not found in signature: nope"),
    (_matrix_rank_1, grpc.StatusCode.INVALID_ARGUMENT,
     "input 'm' has shape [3] but the signature expects [-1,2]"),
], ids=["unknown-model", "unknown-version", "unknown-label", "unknown-signature", "wrong-dtype",
        "missing-input", "unknown-output", "wrong-shape"])
def test_grpc_bad_predict_gets_tf_serving_status(stub, make, code, message):
    got_code, details = grpc_error(stub.Predict, make())
    assert got_code == code
    assert message in details


def test_grpc_malformed_tensor_proto_is_invalid_argument(stub):
    req = predict_request([1.0], signature="mixed")
    req.inputs["n"].CopyFrom(tf.make_tensor_proto([1], tf.int32))
    req.inputs["s"].dtype = tf.string.as_datatype_enum
    req.inputs["s"].tensor_shape.dim.add(size=2)
    req.inputs["s"].string_val.extend([b"one", b"two", b"three"])  # the shape says two
    code, details = grpc_error(stub.Predict, req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("tensor parsing error: s")


def test_grpc_empty_batch_gives_an_empty_result_as_tf_serving_does(stub):
    # TF Serving's gRPC API feeds a 0-row tensor to the session; only REST's JSON refuses it.
    resp = stub.Predict(predict_request(np.zeros([0], np.float32)), timeout=30)
    assert list(resp.outputs["y"].tensor_shape.dim) == [resp.outputs["y"].tensor_shape.dim[0]]
    assert resp.outputs["y"].tensor_shape.dim[0].size == 0 and not resp.outputs["y"].float_val


def test_grpc_classify_without_examples_is_invalid_argument(stub):
    assert grpc_error(stub.Classify, _empty_classify()) == (grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")


def test_grpc_status_of_unknown_version_is_not_found(model_stub):
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "hpt"
    req.model_spec.version.value = 5
    assert grpc_error(model_stub.GetModelStatus, req) == (grpc.StatusCode.NOT_FOUND,
                                                          "Could not find version 5 of model hpt")


def test_grpc_server_keeps_serving_after_errors(stub):
    for _ in range(3):
        grpc_error(stub.Predict, _wrong_dtype())
    assert list(stub.Predict(predict_request([0.0]), timeout=30).outputs["y"].float_val) == [3.0]
