"""The exported all-MiniLM-L6-v2 served by `python -m server`: the `text`
signature over REST and gRPC gives what the SavedModel gives in-process."""
from __future__ import annotations

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
import tensorflow_text  # noqa: F401  (ops of the exported tokenizer)
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests._signature_checks import call

pytestmark = pytest.mark.slow

TEXTS = ["hello world", "TensorFlow Serving answers over REST and gRPC.", "ünïcödé & emoji 🙂"]


@pytest.fixture(scope="module")
def expected(minilm_model_dir):
    return call(minilm_model_dir / "1", "text", {"text": TEXTS})


def test_rest_text_signature_matches_the_saved_model_in_process(minilm_server, expected):
    r = requests.post(minilm_server.rest_url + "/v1/models/minilm:predict",
                      json={"signature_name": "text", "inputs": {"text": TEXTS}}, timeout=120)
    assert r.status_code == 200, r.text
    outputs = r.json()["outputs"]
    if len(expected) == 1:
        outputs = {next(iter(expected)): outputs}
    assert set(outputs) == set(expected)
    for name, want in expected.items():
        np.testing.assert_allclose(np.asarray(outputs[name], dtype=want.dtype), want, rtol=1e-4, atol=1e-5)


def test_rest_readme_example_on_the_default_signature(minilm_server, expected):
    r = requests.post(minilm_server.rest_url + "/v1/models/minilm:predict", json={"instances": ["hello world"]},
                      timeout=120)
    assert r.status_code == 200, r.text
    prediction = r.json()["predictions"][0]
    embedding = prediction["embedding"] if isinstance(prediction, dict) else prediction
    np.testing.assert_allclose(embedding, expected["embedding"][0], rtol=1e-4, atol=1e-5)


def test_grpc_text_signature_matches_the_saved_model_in_process(minilm_server, expected):
    req = predict_pb2.PredictRequest()
    req.model_spec.name, req.model_spec.signature_name = "minilm", "text"
    req.inputs["text"].CopyFrom(tf.make_tensor_proto([t.encode() for t in TEXTS]))
    with grpc.insecure_channel(minilm_server.grpc_target) as ch:
        resp = prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=120)
    assert resp.model_spec.version.value == 1
    for name, want in expected.items():
        np.testing.assert_allclose(tf.make_ndarray(resp.outputs[name]), want, rtol=1e-4, atol=1e-5)
