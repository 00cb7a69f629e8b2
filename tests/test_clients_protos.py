"""clients/_protos: this project's TF Serving messages are wire-compatible with the official ones.

The official classes come from `tensorflow` and `tensorflow-serving-api` (the
full environment); the clients never import them.
"""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import descriptor_pool, json_format

from clients._grpc import GrpcCodec
from clients._protos import messages, stubs
from clients._tensors import proto_to_array

ours = messages()


@pytest.fixture(scope="module")
def official():
    """Import the official modules so their messages are in the default descriptor pool."""
    from tensorflow.core.example import example_pb2  # noqa: F401
    from tensorflow.core.framework import tensor_pb2  # noqa: F401
    from tensorflow.core.protobuf import meta_graph_pb2  # noqa: F401
    from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,  # noqa: F401
                                         get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
                                         prediction_service_pb2_grpc, regression_pb2)
    from google.protobuf import message_factory

    pool = descriptor_pool.Default()
    return lambda full_name: message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


@pytest.mark.parametrize("name", sorted(vars(ours)))
def test_every_field_has_the_official_number_type_and_name(name, official):
    mine = getattr(ours, name).DESCRIPTOR
    theirs = official(mine.full_name).DESCRIPTOR
    for field in mine.fields:
        other = theirs.fields_by_number.get(field.number)
        assert other is not None, f"{mine.full_name}.{field.name} = {field.number} is not in the official message"
        assert (field.name, field.type, field.is_repeated) == (other.name, other.type, other.is_repeated), field.name
        if field.message_type is not None:
            assert field.message_type.full_name == other.message_type.full_name, field.name
        if field.enum_type is not None:
            assert field.enum_type.full_name == other.enum_type.full_name, field.name
            for value in field.enum_type.values:
                assert other.enum_type.values_by_number[value.number].name == value.name
        assert (field.containing_oneof is None) == (other.containing_oneof is None), field.name


def test_the_services_have_tf_servings_method_paths_and_answer_types(official):
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    class Recorder:
        """A channel that records each method's path and the full name of its answer."""

        def __init__(self):
            self.paths = {}

        def unary_unary(self, path, request_serializer, response_deserializer, **_):
            self.paths[path] = response_deserializer.__self__.DESCRIPTOR.full_name
            return path

    for service, official_stub, path in (
            ("PredictionService", prediction_service_pb2_grpc.PredictionServiceStub,
             "/tensorflow.serving.PredictionService/Predict"),
            ("ModelService", model_service_pb2_grpc.ModelServiceStub,
             "/tensorflow.serving.ModelService/GetModelStatus")):
        mine, theirs = Recorder(), Recorder()
        stubs(mine, service)
        official_stub(theirs)
        assert path in mine.paths and mine.paths.items() <= theirs.paths.items(), service


def _predict_request():
    codec = GrpcCodec(1 << 20)
    arrays = {"text": np.array(["héllo", b"\x00\xff"], dtype=object),
              "ids": np.array([[101, 7592, 102]], dtype=np.int32),
              "mask": np.ones((1, 3), dtype=np.int64),
              "scale": np.array([0.5, -1.25], dtype=np.float16)}
    return codec, codec.predict_request("minilm", arrays, "text", None, "stable"), arrays


def test_a_predict_request_reads_back_identically_in_the_official_classes(official):
    import tensorflow as tf

    _, request, arrays = _predict_request()
    theirs = official("tensorflow.serving.PredictRequest").FromString(request.SerializeToString())
    assert (theirs.model_spec.name, theirs.model_spec.signature_name, theirs.model_spec.version_label) == (
        "minilm", "text", "stable")
    for name, value in arrays.items():
        np.testing.assert_array_equal(tf.make_ndarray(theirs.inputs[name]).astype(value.dtype),
                                      np.vectorize(lambda x: x.encode() if isinstance(x, str) else x,
                                                   otypes=[object])(value) if value.dtype == object else value)
    assert theirs.SerializeToString(deterministic=True) == request.SerializeToString(deterministic=True)


def test_official_responses_parse_into_ours_field_for_field(official):
    import tensorflow as tf

    response = official("tensorflow.serving.PredictResponse")()
    response.model_spec.name, response.model_spec.version.value = "minilm", 3
    response.outputs["embedding"].CopyFrom(tf.make_tensor_proto(np.arange(6, dtype=np.float32).reshape(2, 3)))
    response.outputs["label"].CopyFrom(tf.make_tensor_proto([b"pos", b"neg"]))
    mine = ours.PredictResponse.FromString(response.SerializeToString())
    assert json_format.MessageToDict(mine) == json_format.MessageToDict(response)
    np.testing.assert_array_equal(proto_to_array(mine.outputs["embedding"]),
                                  np.arange(6, dtype=np.float32).reshape(2, 3))

    status = official("tensorflow.serving.GetModelStatusResponse")()
    version = status.model_version_status.add(version=2, state=30)
    version.status.error_code, version.status.error_message = 5, "gone"
    mine_status = ours.GetModelStatusResponse.FromString(status.SerializeToString())
    assert json_format.MessageToDict(mine_status, preserving_proto_field_name=True) == \
        json_format.MessageToDict(status, preserving_proto_field_name=True)


def test_examples_requests_and_classify_answers_cross_over_both_ways(official):
    codec = GrpcCodec(1 << 20)
    request = codec.examples_request("classify", "census", [{"age": 35, "edu": "Masters", "w": [0.5, 1.5]}],
                                     {"country": b"NZ"}, "classify", 2, None)
    theirs = official("tensorflow.serving.ClassificationRequest").FromString(request.SerializeToString())
    example = theirs.input.example_list_with_context.examples[0].features.feature
    assert (list(example["age"].int64_list.value), list(example["edu"].bytes_list.value),
            list(example["w"].float_list.value)) == ([35], [b"Masters"], [0.5, 1.5])
    assert theirs.input.example_list_with_context.context.features.feature["country"].bytes_list.value == [b"NZ"]
    assert theirs.model_spec.version.value == 2

    answer = official("tensorflow.serving.ClassificationResponse")()
    row = answer.result.classifications.add()
    row.classes.add(label="neg", score=0.25)
    row.classes.add(label="pos", score=0.75)
    result = codec.examples_response("classify", ours.ClassificationResponse.FromString(answer.SerializeToString()))
    assert result["classes"].tolist() == [[b"neg", b"pos"]] and result["scores"].tolist() == [[0.25, 0.75]]


def test_official_metadata_with_a_packed_signature_map_reads_as_with_rest(official):
    sig_map = official("tensorflow.serving.SignatureDefMap")()
    sig = sig_map.signature_def["text"]
    sig.method_name = "tensorflow/serving/predict"
    sig.inputs["text"].dtype = 7
    sig.inputs["text"].tensor_shape.dim.add(size=-1)
    sig.outputs["embedding"].dtype = 1
    sig.outputs["embedding"].tensor_shape.dim.add(size=-1)
    sig.outputs["embedding"].tensor_shape.dim.add(size=384)
    response = official("tensorflow.serving.GetModelMetadataResponse")()
    response.model_spec.name, response.model_spec.version.value = "minilm", 1
    response.metadata["signature_def"].Pack(sig_map)
    meta = GrpcCodec(1 << 20).metadata_response(
        "minilm", ours.GetModelMetadataResponse.FromString(response.SerializeToString()))
    assert meta.version == 1
    assert meta.signatures["text"].inputs["text"].dtype == "string"
    assert meta.signatures["text"].outputs["embedding"].shape == (None, 384)
