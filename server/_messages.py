"""Core results as TF Serving's response protos (shared by gRPC, and by REST
for status and metadata, which TF Serving renders from the same protos).

>>> from server._repository import VersionStatus
>>> status_response([VersionStatus(1, "AVAILABLE")]).model_version_status[0].state
30
"""
from __future__ import annotations

from google.protobuf import any_pb2, json_format
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     inference_pb2, model_pb2, predict_pb2, regression_pb2)

from tensorflow.python.framework import tensor_util

import protocol

from ._tensors import array_to_proto

__all__ = ["model_spec", "status_response", "metadata_response", "predict_response",
           "classify_response", "regress_response", "multi_inference_response", "to_json_dict"]

_STATE = get_model_status_pb2.ModelVersionStatus.State


def model_spec(name: str, version: int | None, signature_name: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=name, signature_name=signature_name)
    if version is not None:
        spec.version.value = version
    return spec


def status_response(statuses) -> get_model_status_pb2.GetModelStatusResponse:
    resp = get_model_status_pb2.GetModelStatusResponse()
    for s in statuses:
        mvs = resp.model_version_status.add(version=s.version, state=_STATE.Value(s.state))
        mvs.status.SetInParent()  # TF Serving always sends a status, OK included
        if s.error is not None:
            mvs.status.error_code = s.error.code.value[0]
            mvs.status.error_message = s.error.message
    return resp


def metadata_response(result) -> get_model_metadata_pb2.GetModelMetadataResponse:
    resp = get_model_metadata_pb2.GetModelMetadataResponse(
        model_spec=model_spec(result.name, result.version, result.signature_name))
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for name, sig in result.signature_defs.items():
        sig_map.signature_def[name].CopyFrom(sig)
    packed = any_pb2.Any()
    packed.Pack(sig_map)
    resp.metadata["signature_def"].CopyFrom(packed)
    return resp


def predict_response(result, tensor_content: bool = False) -> predict_pb2.PredictResponse:
    """`tensor_content`: pack numbers as raw bytes (--enable_serialization_as_tensor_content)
    instead of the typed value fields."""
    resp = predict_pb2.PredictResponse(model_spec=model_spec(result.name, result.version,
                                                             result.signature_name))
    for alias, arr in result.outputs.items():
        dtype = result.signature.outputs[alias].dtype
        if tensor_content and arr.dtype != object:
            resp.outputs[alias].CopyFrom(tensor_util.make_tensor_proto(arr))
        else:
            resp.outputs[alias].CopyFrom(array_to_proto(arr, dtype))
    return resp


def _classification_result(rows) -> classification_pb2.ClassificationResult:
    out = classification_pb2.ClassificationResult()
    for row in rows:
        c = out.classifications.add()
        for label, score in row:
            cls = c.classes.add()
            if label is not None:
                cls.label = label
            if score is not None:
                cls.score = score
    return out


def _regression_result(values) -> regression_pb2.RegressionResult:
    out = regression_pb2.RegressionResult()
    for v in values:
        out.regressions.add(value=v)
    return out


def classify_response(result) -> classification_pb2.ClassificationResponse:
    return classification_pb2.ClassificationResponse(
        model_spec=model_spec(result.name, result.version, result.signature_name),
        result=_classification_result(result.result))


def regress_response(result) -> regression_pb2.RegressionResponse:
    return regression_pb2.RegressionResponse(
        model_spec=model_spec(result.name, result.version, result.signature_name),
        result=_regression_result(result.result))


def multi_inference_response(results) -> inference_pb2.MultiInferenceResponse:
    resp = inference_pb2.MultiInferenceResponse()
    for r in results:
        item = resp.results.add(model_spec=model_spec(r.name, r.version, r.signature_name))
        if r.method == protocol.CLASSIFY_METHOD:
            item.classification_result.CopyFrom(_classification_result(r.result))
        else:
            item.regression_result.CopyFrom(_regression_result(r.result))
    return resp


def to_json_dict(message) -> dict:
    """A proto as TF Serving's REST API prints it (proto field names, defaults included)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
