"""TF Serving's REST JSON <-> the core's types (`api_rest.md`, `json_tensor.cc`).

Requests: the row (`instances`) and columnar (`inputs`) predict formats, and
classify/regress `examples` (plus `context`) turned into serialized
`tf.Example`s. Responses: `predictions`/`outputs`, `results` for classify and
regress (what the real server and its test suite answer; `api_rest.md` shows
`result`), model status and metadata as the protos' JSON. Every malformed
body is an `InvalidArgument` in TF Serving's words, never a Python exception.

>>> body = parse_body(b'{"instances": [1.0, 2.0]}')
>>> decode, encode = predict_codec(body)
>>> encode({"y": np.array([2.5, 3.0], np.float32)})
{'predictions': array([2.5, 3. ], dtype=float32)}
>>> regress_json([4.0, 6.0])
{'results': [4.0, 6.0]}
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np

from . import _inference
from ._errors import InvalidArgument
from ._messages import metadata_response, status_response, to_json_dict
from ._tensors import array_to_json, b64_value, json_to_array, loads

__all__ = ["parse_body", "signature_name", "predict_codec", "examples", "classify_json",
           "regress_json", "status_json", "metadata_json"]


# -- requests -------------------------------------------------------------
def parse_body(raw: bytes) -> dict:
    """The request's JSON object, or InvalidArgument as TF Serving's `ParseJson` words it."""
    if not raw:
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        body = loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except UnicodeDecodeError as e:
        raise InvalidArgument(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}") from None
    except RecursionError:  # the parser's own nesting bound: a client error, not ours
        raise InvalidArgument("JSON Parse error: arrays and objects are nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidArgument(f"JSON Parse error: Is not object: the request body must be a JSON "
                              f"object, got {type(body).__name__}")
    return body


def signature_name(body: dict) -> str:
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise InvalidArgument(f"'signature_name' must be a string, got {json.dumps(name)[:80]}")
    return name


def _shallow(decode: Callable):
    """`decode` with values nested deeper than Python's stack can walk
    answered as the client error they are."""
    def guarded(*args):
        try:
            return decode(*args)
        except RecursionError:
            raise InvalidArgument("Failed to process the request: its arrays are nested too deeply "
                                  "to be a tensor (a tensor has at most 254 dimensions)") from None
    return guarded


def predict_codec(body: dict):
    """(decode, encode) for a predict body: `decode(sig)` gives the input
    arrays, `encode(outputs)` the response object, in the body's format."""
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows == has_cols:
        raise InvalidArgument("Missing 'inputs' or 'instances' key" if not has_rows else
                              "Not both 'inputs' and 'instances' can be set: 'instances' is "
                              "the row format, 'inputs' the columnar one")
    if has_rows:
        return (_shallow(lambda sig: _decode_rows(body["instances"], sig)),
                lambda outputs: {"predictions": _rows_json(outputs)})
    return (_shallow(lambda sig: _decode_columns(body["inputs"], sig)),
            lambda outputs: {"outputs": _columns_json(outputs)})


def _named_arrays(values: dict, sig, error: str) -> dict:
    """Each input's JSON value as an array of its dtype; `error` words a failure."""
    out = {}
    for key, value in values.items():
        try:
            out[key] = json_to_array(value, sig.inputs[key].dtype, key)
        except InvalidArgument as e:
            raise InvalidArgument(error.format(key=key, e=e)) from None
    return out


def _single_array(value, sig, where: str) -> dict:
    """The JSON value of a signature's only input as an array of its dtype."""
    (key, info), = sig.inputs.items()
    try:
        return {key: json_to_array(value, info.dtype, key)}
    except InvalidArgument as e:
        raise InvalidArgument(f"Failed to process {where}: {e}") from None


def _decode_rows(instances, sig) -> dict:
    if not isinstance(instances, list):
        raise InvalidArgument(f"Excepting 'instances' to be an list/array, got {type(instances).__name__}")
    if not instances:
        raise InvalidArgument("'instances' is an empty list/array: send at least one instance")
    named = isinstance(instances[0], dict) and not b64_value(instances[0])
    if named:
        keys = set(instances[0])
        for i, inst in enumerate(instances):
            if not isinstance(inst, dict) or b64_value(inst) or set(inst) != keys:
                got = sorted(inst) if isinstance(inst, dict) else type(inst).__name__
                raise InvalidArgument(f"Failed to process element: {i} of 'instances' list. JSON object "
                                      f"with keys {got} does not match the keys of element 0 "
                                      f"{sorted(keys)}; every instance needs the same named inputs")
        _inference.check_inputs(sig, keys)
        return _named_arrays({key: [inst[key] for inst in instances] for key in keys}, sig,
                             "Failed to process element of 'instances' list, key: {key}. Error: {e}")
    if len(sig.inputs) != 1:
        raise InvalidArgument(f"Failed to process element: 0 of 'instances' list. Error: Expecting "
                              f"object but got {type(instances[0]).__name__}: the signature has inputs "
                              f"{_inference.sorted_set(sig.inputs)}, so each instance must be a JSON "
                              f"object keyed by input name")
    return _single_array(instances, sig, "'instances' list")


def _decode_columns(inputs, sig) -> dict:
    if isinstance(inputs, dict) and not b64_value(inputs):
        _inference.check_inputs(sig, inputs.keys())
        return _named_arrays(inputs, sig, "Failed to process 'inputs' key: {key}. Error: {e}")
    if len(sig.inputs) != 1:
        raise InvalidArgument(f"'inputs' is not an object of named tensors but the signature has "
                              f"inputs {_inference.sorted_set(sig.inputs)}; send "
                              f"{{\"inputs\": {{\"name\": value, ...}}}}")
    return _single_array(inputs, sig, "'inputs'")


def _feature(value, where: str):
    from tensorflow.core.example import feature_pb2
    values = value if isinstance(value, list) else [value]
    if not values:
        raise InvalidArgument(f"{where}: an empty list has no type; give at least one value")
    if all(isinstance(v, str) or b64_value(v) for v in values):
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(
            value=[json_to_array(v, "object").item() for v in values]))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if not all(-2**63 <= v < 2**63 for v in values):
            raise InvalidArgument(f"{where}: an integer feature value does not fit in int64")
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
    raise InvalidArgument(f"{where}: feature values must be all strings (or {{\"b64\": ...}}), all "
                          f"integers or all numbers; got {json.dumps(value)[:80]}")


def _example(obj, where: str) -> bytes:
    from tensorflow.core.example import example_pb2
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{where}: expected a JSON object of features, got {json.dumps(obj)[:80]}")
    ex = example_pb2.Example()
    for key, value in obj.items():
        ex.features.feature[key].CopyFrom(_feature(value, f"{where} feature '{key}'"))
    return ex.SerializeToString()


@_shallow
def examples(body: dict) -> list[bytes]:
    """A classify/regress body's `examples` (each merged with `context`) as
    serialized `tf.Example`s."""
    if "examples" not in body:
        raise InvalidArgument("Missing 'examples' key: send {\"examples\": [{\"feature\": value}, ...]}")
    items = body["examples"]
    if not isinstance(items, list):
        raise InvalidArgument("'examples' is not an array")
    if not items:
        raise InvalidArgument("Input is empty.")
    context = _example(body["context"], "'context'") if "context" in body else b""
    return [context + _example(e, f"'examples' element {i}") for i, e in enumerate(items)]


# -- responses ------------------------------------------------------------
def _rows_json(outputs: dict):
    sizes = {}
    for name, arr in outputs.items():
        if arr.ndim == 0:
            raise InvalidArgument(f"Tensor name: {name} has no shape information; a scalar output "
                                  f"cannot be returned in row format (use \"inputs\" for columnar format)")
        sizes[name] = arr.shape[0]
    if len(set(sizes.values())) > 1:
        first = next(iter(sizes))
        bad = next(n for n in sizes if sizes[n] != sizes[first])
        raise InvalidArgument(f"Tensor name: {bad} has inconsistent batch size: {sizes[bad]} "
                              f"expecting: {sizes[first]} (use \"inputs\" for columnar format)")
    if len(outputs) == 1:
        (name, arr), = outputs.items()
        return array_to_json(arr, name)
    columns = {name: array_to_json(arr, name) for name, arr in outputs.items()}
    n = next(iter(sizes.values()))
    return [{name: col[i] for name, col in columns.items()} for i in range(n)]


def _columns_json(outputs: dict):
    if len(outputs) == 1:
        (name, arr), = outputs.items()
        return array_to_json(arr, name)
    return {name: array_to_json(arr, name) for name, arr in outputs.items()}


def classify_json(rows) -> dict:
    """`{"results": [[[label, score], ...], ...]}`, one list of pairs per example."""
    return {"results": [[[label or "", score or 0.0] for label, score in row] for row in rows]}


def regress_json(values) -> dict:
    """`{"results": [value, ...]}`, one value per example."""
    return {"results": values}


def status_json(statuses) -> dict:
    return to_json_dict(status_response(statuses))


def metadata_json(result) -> dict:
    from tensorflow_serving.apis import get_model_metadata_pb2
    resp = metadata_response(result)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(sig_map)
    return {"model_spec": to_json_dict(resp.model_spec),
            "metadata": {"signature_def": to_json_dict(sig_map)}}
