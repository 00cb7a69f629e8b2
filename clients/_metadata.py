"""What `metadata()` and `status()` return, parsed from TF Serving's JSON.

Both transports parse the same JSON shape: the REST API answers it directly,
and the gRPC client turns its protos into it with `json_format.MessageToDict`.

>>> meta = parse_metadata({"model_spec": {"name": "m", "version": "1"}, "metadata": {"signature_def": {
...     "signature_def": {"serving_default": {"method_name": "tensorflow/serving/predict",
...         "inputs": {"text": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}]}}},
...         "outputs": {"embedding": {"dtype": "DT_FLOAT",
...                                   "tensor_shape": {"dim": [{"size": "-1"}, {"size": "384"}]}}}}}}}})
>>> meta.signatures["serving_default"].outputs["embedding"]
TensorSpec(dtype='float32', shape=(None, 384))
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from clients._errors import ResponseFormatError
from clients._tensors import TensorSpec, dtype_name

__all__ = ["SignatureInfo", "ModelMetadata", "VersionStatus", "ModelStatus",
           "parse_metadata", "parse_status"]


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
    """One signature: its method and its inputs/outputs by name."""

    name: str
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def to_dict(self) -> dict:
        return {"method_name": self.method_name,
                "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
                "outputs": {k: v.to_dict() for k, v in self.outputs.items()}}


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """A model version's signatures (`GET /v1/models/NAME/metadata`, `GetModelMetadata`)."""

    model: str
    version: int | None
    signatures: dict[str, SignatureInfo]

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version,
                "signatures": {k: v.to_dict() for k, v in self.signatures.items()}}


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str            # START, LOADING, AVAILABLE, UNLOADING, END, UNKNOWN
    error_code: str = "OK"
    error_message: str = ""


@dataclasses.dataclass(frozen=True)
class ModelStatus:
    """The states of a model's versions (`GET /v1/models/NAME`, `GetModelStatus`)."""

    model: str
    versions: tuple[VersionStatus, ...]

    @property
    def available(self) -> bool:
        """Whether some version asked about is AVAILABLE."""
        return any(v.state == "AVAILABLE" for v in self.versions)

    def to_dict(self) -> dict:
        return {"model": self.model, "versions": [dataclasses.asdict(v) for v in self.versions]}


def _tensor_spec(info: Mapping[str, Any]) -> TensorSpec:
    shape_info = info.get("tensor_shape") or info.get("tensorShape") or {}
    if shape_info.get("unknown_rank") or shape_info.get("unknownRank"):
        shape = None
    else:
        shape = tuple(None if int(d.get("size", -1)) < 0 else int(d["size"])
                      for d in shape_info.get("dim", []))
    return TensorSpec(dtype=dtype_name(info.get("dtype", "DT_INVALID")), shape=shape)


def parse_metadata(body: Mapping[str, Any], model: str = "") -> ModelMetadata:
    try:
        spec = body.get("model_spec", {})
        sig_map = body["metadata"]["signature_def"]
        sig_map = sig_map.get("signature_def", sig_map)
        signatures = {}
        for name, sig in sig_map.items():
            signatures[name] = SignatureInfo(
                name=name,
                method_name=sig.get("method_name", sig.get("methodName", "")),
                inputs={k: _tensor_spec(v) for k, v in sorted(sig.get("inputs", {}).items())},
                outputs={k: _tensor_spec(v) for k, v in sorted(sig.get("outputs", {}).items())})
        version = spec.get("version")
        return ModelMetadata(model=spec.get("name", model),
                             version=int(version) if version not in (None, "") else None,
                             signatures=signatures)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResponseFormatError(f"model metadata is not in TF Serving's format "
                                  f"(expected metadata.signature_def.signature_def): {exc!r}") from exc


def parse_status(body: Mapping[str, Any], model: str) -> ModelStatus:
    try:
        versions = []
        for v in body.get("model_version_status", []):
            status = v.get("status", {}) or {}
            versions.append(VersionStatus(version=int(v.get("version", 0)),
                                          state=str(v.get("state", "UNKNOWN")),
                                          error_code=str(status.get("error_code", "OK")),
                                          error_message=str(status.get("error_message", ""))))
        return ModelStatus(model=model, versions=tuple(sorted(versions, key=lambda s: s.version)))
    except (TypeError, ValueError, AttributeError) as exc:
        raise ResponseFormatError(f"model status is not in TF Serving's format "
                                  f"(expected model_version_status: [...]): {exc!r}") from exc
