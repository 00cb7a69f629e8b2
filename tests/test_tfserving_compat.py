"""TF Serving's model-server suite (`tensorflow_model_server_test.py`), its REST and
gRPC cases ported to test models of ours shaped like TF Serving's
(`tests/_tfserving_models.py`: half_plus_two / half_plus_three in `00000123`).

The suite itself runs against a real tensorflow/serving checkout with
`python -m tests.tfserving_suite.run /path/to/checkout`, or here with
`TFSERVING_CHECKOUT=/path/to/checkout` (`test_tfserving_suite_passes`).
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import requests
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     inference_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

import protocol
from server import ServerProcess, free_port
from tests._tfserving_models import VERSION, build_half_plus_two

RPC_TIMEOUT = 20.0
CONFIG = """model_config_list: {{
  config: {{ name: "half_plus_two", base_path: "{two}", model_platform: "tensorflow" }},
  config: {{ name: "half_plus_three", base_path: "{three}", model_platform: "tensorflow" }}
}}
"""
MONITORING = 'prometheus_config: { enable: true, path: "/monitoring/prometheus/metrics" }\n'


@pytest.fixture(scope="session")
def tfserving_models(tmp_path_factory) -> dict[str, str]:
    """TF Serving-like test models: {name: base path holding 00000123/}."""
    base = tmp_path_factory.mktemp("tfserving-models")
    return {"half_plus_two": build_half_plus_two(base / "saved_model_half_plus_two_cpu", 2.0),
            "half_plus_three": build_half_plus_two(base / "saved_model_half_plus_three", 3.0)}


@pytest.fixture(scope="module")
def srv(tfserving_models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tfserving-config")
    (tmp / "models.config").write_text(CONFIG.format(two=tfserving_models["half_plus_two"],
                                                     three=tfserving_models["half_plus_three"]))
    (tmp / "monitoring.config").write_text(MONITORING)
    srv = ServerProcess([f"--model_config_file={tmp / 'models.config'}",
                         f"--monitoring_config_file={tmp / 'monitoring.config'}",
                         f"--grpc_socket_path={tmp / 'tf-serving.sock'}", "--rest_api_timeout_in_ms=5000"],
                        models=["half_plus_two", "half_plus_three"])
    srv.socket_path = tmp / "tf-serving.sock"
    with srv:
        yield srv


@pytest.fixture(scope="module")
def stub(srv):
    with grpc.insecure_channel(srv.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def rest(srv, path, body=None):
    if body is None:
        r = requests.get(srv.rest_url + path, timeout=RPC_TIMEOUT)
    else:
        r = requests.post(srv.rest_url + path, data=json.dumps(body), timeout=RPC_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def verify_predict(testcase_stub, model, expected, *, specify_output=True, batch_input=False,
                   signature=protocol.DEFAULT_SIGNATURE):
    """The suite's VerifyPredictRequest: x = [2.0] (shape [1] or [1,1]) -> y, model_spec echoed."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    if batch_input:
        request.inputs["x"].tensor_shape.dim.add().size = 1
    if specify_output:
        request.output_filter.append("y")
    result = testcase_stub.Predict(request, RPC_TIMEOUT)
    assert "y" in result.outputs
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [expected]
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        model, signature, VERSION)


def examples(request_input, x=2.0):
    request_input.example_list.examples.add().features.feature["x"].float_list.value.extend([x])


# ------------------------------------------------------------- TF Serving's quick start

def test_readme_example_predicts_half_plus_two(srv):
    # TF Serving's README and docker.md: x of static shape [-1,1] fed as [3].
    assert rest(srv, "/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]}) == {
        "predictions": [2.5, 3.0, 4.5]}


# ------------------------------------------------------------- gRPC cases

@pytest.mark.parametrize("specify_output", [True, False])
def test_predict_saved_model(stub, specify_output):
    verify_predict(stub, "half_plus_two", 3.0, specify_output=specify_output)


def test_predict_batch_input_shape_1_1(stub):
    verify_predict(stub, "half_plus_two", 3.0, batch_input=True, specify_output=False)


def test_good_model_config_serves_both_models(stub):
    verify_predict(stub, "half_plus_two", 3.0)
    verify_predict(stub, "half_plus_three", 4.0, specify_output=False)


def test_predict_over_unix_socket(srv):
    with grpc.insecure_channel(f"unix:{srv.socket_path}") as channel:
        verify_predict(prediction_service_pb2_grpc.PredictionServiceStub(channel), "half_plus_two", 3.0,
                       specify_output=False)


def test_get_model_status(srv):
    with grpc.insecure_channel(srv.grpc_target) as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "half_plus_two"
        result = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, RPC_TIMEOUT)
    assert [(s.version, s.status.error_code) for s in result.model_version_status] == [(VERSION, 0)]


def test_get_model_metadata(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "half_plus_two"
    request.metadata_field.append("signature_def")
    result = stub.GetModelMetadata(request, RPC_TIMEOUT)
    assert (result.model_spec.name, result.model_spec.version.value) == ("half_plus_two", VERSION)
    assert list(result.metadata) == ["signature_def"]


def test_classify(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "classify_x_to_y"
    examples(request.input)
    result = stub.Classify(request, RPC_TIMEOUT)
    assert [[c.score for c in cl.classes] for cl in result.result.classifications] == [[3.0]]
    assert (result.model_spec.signature_name, result.model_spec.version.value) == ("classify_x_to_y", VERSION)


def test_regress(stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "regress_x_to_y"
    examples(request.input)
    result = stub.Regress(request, RPC_TIMEOUT)
    assert [r.value for r in result.result.regressions] == [3.0]
    assert (result.model_spec.signature_name, result.model_spec.version.value) == ("regress_x_to_y", VERSION)


def test_multi_inference(stub):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("regress_x_to_y", protocol.REGRESS_METHOD),
                              ("classify_x_to_y", protocol.CLASSIFY_METHOD)):
        task = request.tasks.add()
        task.model_spec.name = "half_plus_two"
        task.model_spec.signature_name = signature
        task.method_name = method
    examples(request.input)
    result = stub.MultiInference(request, RPC_TIMEOUT)
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    assert [(r.model_spec.signature_name, r.model_spec.version.value) for r in result.results] == [
        ("regress_x_to_y", VERSION), ("classify_x_to_y", VERSION)]


@pytest.mark.parametrize("content", ["tensor_content", "float_val"])
def test_negative_dimension_is_a_tensor_parsing_error(stub, content):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    x = request.inputs["x"]
    x.dtype = types_pb2.DT_FLOAT
    if content == "tensor_content":
        x.tensor_content = struct.pack("<f", 2.0)
    else:
        x.float_val.append(2.0)
    x.tensor_shape.dim.add().size = -5
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(request, RPC_TIMEOUT)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tensor parsing error: x" in e.value.details()


# ------------------------------------------------------------- REST cases

def test_classify_rest(srv):
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    assert rest(srv, "/v1/models/half_plus_two:classify", body) == {"results": [[["", 3.0]]]}


def test_regress_rest(srv):
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    assert rest(srv, "/v1/models/half_plus_two:regress", body) == {"results": [3.0]}


def test_predict_rest(srv):
    assert rest(srv, "/v1/models/half_plus_two:predict", {"instances": [2.0, 3.0, 4.0]}) == {
        "predictions": [3.0, 3.5, 4.0]}


def test_predict_columnar_rest(srv):
    assert rest(srv, "/v1/models/half_plus_two:predict", {"inputs": [2.0, 3.0, 4.0]}) == {
        "outputs": [3.0, 3.5, 4.0]}


def test_get_status_rest(srv):
    assert rest(srv, "/v1/models/half_plus_two") == {"model_version_status": [{
        "version": str(VERSION), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def test_get_model_metadata_rest(srv):
    got = rest(srv, "/v1/models/half_plus_two/metadata")
    assert got["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": str(VERSION)}
    sigs = got["metadata"]["signature_def"]["signature_def"]
    assert sorted(sigs) == ["classify_x_to_y", "regress_x2_to_y3", "regress_x_to_y", "regress_x_to_y2",
                            "serving_default"]
    # As in TF Serving's half_plus_two_model_metadata.json.
    dims = [{"size": "-1", "name": ""}, {"size": "1", "name": ""}]
    assert sigs["serving_default"] == {
        "inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": "x:0"}},
        "outputs": {"y": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": dims, "unknown_rank": False},
                          "name": "y:0"}},
        "method_name": "tensorflow/serving/predict", "defaults": {}}


def test_prometheus_endpoint(srv):
    r = requests.get(srv.rest_url + "/monitoring/prometheus/metrics", timeout=RPC_TIMEOUT)
    assert r.status_code == 200 and "# TYPE" in r.text


def test_bad_model_config_says_tf_servings_parse_error(tmp_path):
    bad = tmp_path / "bad_model_config.txt"
    bad.write_text("improperly formatted file")
    proc = subprocess.run([sys.executable, "-m", "server", f"--model_config_file={bad}",
                           f"--port={free_port()}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in proc.stderr


# ------------------------------------------------------------- the suite itself

def test_tfserving_suite_passes():
    """TF Serving's own suite against `python -m server` (needs a checkout: not in CI)."""
    checkout = os.environ.get("TFSERVING_CHECKOUT")
    if not checkout:
        pytest.skip("set TFSERVING_CHECKOUT to a tensorflow/serving checkout to run TF Serving's "
                    "tensorflow_model_server_test.py against this server")
    from tests.tfserving_suite.run import run

    results = run(Path(checkout))
    failed = {name: detail for name, (outcome, detail) in results.items() if outcome == "fail"}
    assert not failed, "\n\n".join(f"{name}:\n{detail}" for name, detail in failed.items())
