"""The Hugging Face walkthrough "Faster TensorFlow models in Hugging Face Transformers"
(huggingface.co/blog/tf-serving), its REST and gRPC client code as published,
with only host, port and model name changed, against `--default-signature tokens`
exports: `serving_default` has exactly the outputs of Transformers' own SavedModel.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from server import ServerProcess


def _signature(version_dir, name="serving_default"):
    import tensorflow as tf
    return tf.saved_model.load(str(version_dir)).signatures[name]


@pytest.fixture(scope="module")
def served(tiny_classifier_tokens_dir):
    with ServerProcess([f"--model_name=bert", f"--model_base_path={tiny_classifier_tokens_dir}"]) as srv:
        yield srv


def test_tokens_default_of_a_classifier_returns_only_logits(tiny_classifier_tokens_dir):
    sig = _signature(tiny_classifier_tokens_dir / "1")
    assert set(sig.structured_outputs) == {"logits"}
    assert set(sig.structured_input_signature[1]) == {"input_ids", "attention_mask", "token_type_ids"}
    # The richer outputs stay on the named signature.
    named = _signature(tiny_classifier_tokens_dir / "1", "tokens")
    assert {"logits", "probabilities", "label", "score"} <= set(named.structured_outputs)


@pytest.mark.parametrize("extras", [(), ("hidden_states", "attentions")])
def test_tokens_default_of_a_base_model_returns_transformers_outputs(tiny_bare_dir, tiny_extras_dir, extras):
    out = tiny_extras_dir if extras else tiny_bare_dir  # both exported with --default-signature tokens
    outputs = _signature(out / "1").structured_outputs
    assert set(outputs) == {"last_hidden_state", "pooler_output", *extras}


def test_walkthrough_rest_client_code(served, tiny_classifier_checkpoint):
    from transformers import BertConfig, BertTokenizerFast
    import requests
    tokenizer = BertTokenizerFast.from_pretrained(str(tiny_classifier_checkpoint))
    config = BertConfig.from_pretrained(str(tiny_classifier_checkpoint))
    # --- the walkthrough's REST code (host, port and model name changed) ---
    sentence = "This is a sentence"
    batch = tokenizer(sentence)
    batch = dict(batch)
    batch = [batch]
    input_data = {"instances": batch}
    r = requests.post(f"http://localhost:{served.rest_port}/v1/models/bert:predict", data=json.dumps(input_data))
    result = json.loads(r.text)["predictions"][0]
    abs_scores = np.abs(result)
    label_id = np.argmax(abs_scores)
    label = config.id2label[label_id]
    # ---
    assert len(result) == 2 and label in ("negative", "positive")


def test_walkthrough_grpc_client_code(served, tiny_classifier_checkpoint):
    from transformers import BertConfig, BertTokenizerFast
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    tokenizer = BertTokenizerFast.from_pretrained(str(tiny_classifier_checkpoint))
    config = BertConfig.from_pretrained(str(tiny_classifier_checkpoint))
    # --- the walkthrough's gRPC code (host, port and model name changed) ---
    channel = grpc.insecure_channel(f"localhost:{served.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    sentence = "This is a sentence"
    batch = tokenizer(sentence, return_tensors="tf")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "bert"
    request.model_spec.signature_name = "serving_default"
    request.inputs["input_ids"].CopyFrom(tf.make_tensor_proto(batch["input_ids"]))
    request.inputs["attention_mask"].CopyFrom(tf.make_tensor_proto(batch["attention_mask"]))
    request.inputs["token_type_ids"].CopyFrom(tf.make_tensor_proto(batch["token_type_ids"]))
    result = stub.Predict(request)
    output = result.outputs["logits"].float_val
    label = config.id2label[np.argmax(np.abs(output))]
    # ---
    channel.close()
    assert len(output) == 2 and label in ("negative", "positive")
    assert set(result.outputs) == {"logits"}
