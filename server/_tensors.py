"""Conversions between the wire formats and numpy: REST JSON and `TensorProto`.

JSON follows TF Serving's `api_rest.md`: row (`instances`) and columnar
(`inputs`) request formats, `{"b64": ...}` for binary strings, outputs whose
alias ends in `_bytes` returned as `{"b64": ...}`, NaN/Infinity as literals.
Numbers are checked against the signature's dtype the way TF Serving's
`json_tensor.cc` does (a float where an int is expected is an error, not a
silent truncation).

>>> a = json_to_array([[1, 2], [3, 4]], "float32", "x")
>>> a.dtype.name, a.shape
('float32', (2, 2))
>>> array_to_json(np.array([b"\\x00"], dtype=object), "out_bytes")
[{'b64': 'AA=='}]
>>> dumps({"y": np.array([0.1, 2.5], np.float32)})
b'{"y":[0.1,2.5]}'
>>> dumps({"y": np.array([float("nan")], np.float32)}, fast=False)
b'{"y":[NaN]}'
"""
from __future__ import annotations

import base64
import binascii
import json

import numpy as np

try:  # ~15x faster than json for float arrays, and writes float32 in its shortest form
    import orjson
except ImportError:  # pragma: no cover - declared in pyproject; json still works
    orjson = None
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.python.framework import dtypes as tf_dtypes
from tensorflow.python.framework import tensor_util

from ._errors import InvalidArgument

__all__ = [
    "dtype_name", "numpy_dtype", "json_to_array", "array_to_json",
    "proto_to_array", "array_to_proto", "dumps", "loads", "all_finite", "b64_value",
]

_STRING = types_pb2.DT_STRING


def dtype_name(dtype) -> str:
    """TF's short name ('float', 'int32', 'string') of a DataType enum or numpy dtype."""
    if isinstance(dtype, np.dtype) and dtype == object:
        return "string"
    try:
        d = tf_dtypes.as_dtype(dtype)
    except TypeError:
        return str(dtype)
    return {"float32": "float", "float64": "double"}.get(d.name, d.name)


def numpy_dtype(dtype_enum: int) -> np.dtype:
    """The numpy dtype holding a TF DataType (strings are object arrays of bytes)."""
    if dtype_enum == _STRING:
        return np.dtype(object)
    return np.dtype(tf_dtypes.as_dtype(dtype_enum).as_numpy_dtype)


def b64_value(value) -> bool:
    """Whether a JSON value is TF Serving's binary form `{"b64": "..."}`."""
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _type_word(v) -> str:
    if isinstance(v, bool):
        return "Bool"
    if isinstance(v, (int, float)):
        return "Number"
    if isinstance(v, str):
        return "String"
    if isinstance(v, list):
        return "Array"
    if v is None:
        return "Null"
    return "Object"


def _type_error(value, expected: str) -> InvalidArgument:
    text = json.dumps(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return InvalidArgument(f"JSON Value: {text} Type: {_type_word(value)} is not of expected type: {expected}")


def _decode_b64(text) -> bytes:
    if not isinstance(text, str):
        raise _type_error({"b64": text}, "string (base64 text in {\"b64\": ...})")
    # Standard or web-safe alphabet, padding optional (as absl's Base64Unescape).
    normal = text.translate(_WEBSAFE).rstrip("=")
    try:
        return base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"Unable to base64 decode {text[:40]!r}: give base64 text "
                              f"(RFC 4648) in {{\"b64\": ...}}") from None


_WEBSAFE = str.maketrans("-_", "+/")


def _shape_of(value, path=()) -> tuple[int, ...]:
    """Shape of a rectangular nested list; raises naming the first ragged row."""
    if not isinstance(value, list):
        return ()
    if not value:
        return (0,)
    first = _shape_of(value[0], path + (0,))
    for i, item in enumerate(value[1:], 1):
        shape = _shape_of(item, path + (i,))
        if shape != first:
            where = "".join(f"[{p}]" for p in path + (i,))
            raise InvalidArgument(f"Expecting tensor size: {int(np.prod(first)) if first else 1} "
                                  f"(shape {list(first)}) but got: {int(np.prod(shape)) if shape else 1} "
                                  f"(shape {list(shape)}) at element {where}; all rows must have "
                                  f"the same length")
    return (len(value),) + first


def _flatten(value, out: list) -> None:
    if isinstance(value, list):
        for v in value:
            _flatten(v, out)
    else:
        out.append(value)


def _string_array(value) -> np.ndarray:
    shape = _shape_of(value)
    flat: list = []
    _flatten(value, flat)
    items = []
    for v in flat:
        if isinstance(v, str):
            items.append(v.encode("utf-8"))
        elif b64_value(v):
            items.append(_decode_b64(v["b64"]))
        else:
            raise _type_error(v, "string")
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr.reshape(shape)


def _first(value, pred):
    flat: list = []
    _flatten(value, flat)
    return next((v for v in flat if pred(v)), flat[0] if flat else value)


def json_to_array(value, dtype: str | int | np.dtype, name: str = "") -> np.ndarray:
    """A JSON value (scalar or nested lists) as a numpy array of the signature's dtype."""
    target = numpy_dtype(dtype) if isinstance(dtype, int) else np.dtype(dtype)
    if target == object:
        return _string_array(value)
    tname = dtype_name(target)
    try:
        arr = np.asarray(value)
    except (ValueError, OverflowError):
        _shape_of(value)  # names the ragged row
        raise _type_error(_first(value, lambda v: not isinstance(v, (int, float))), tname) from None
    kind = arr.dtype.kind
    if kind == "O" or kind in "USV":
        if kind == "O":
            _shape_of(value)
        raise _type_error(_first(value, lambda v: not isinstance(v, (int, float)) or isinstance(v, bool)), tname)
    if target.kind == "b":
        if kind != "b" and arr.size:
            raise _type_error(_first(value, lambda v: not isinstance(v, bool)), tname)
    elif target.kind in "iu":
        if kind == "f" or (kind == "b" and arr.size):
            raise _type_error(_first(value, lambda v: isinstance(v, (float, bool))), tname)
        if arr.size:
            info = np.iinfo(target)
            if arr.min() < info.min or arr.max() > info.max:
                raise _type_error(_first(value, lambda v: not info.min <= v <= info.max), tname)
    elif kind == "b" and arr.size:
        raise _type_error(_first(value, lambda v: isinstance(v, bool)), tname)
    return arr.astype(target, copy=False)


def _bytes_to_json(b: bytes, as_b64: bool):
    if as_b64:
        return {"b64": base64.b64encode(b).decode("ascii")}
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        # Not text: JSON cannot carry it as a string, so send it as b64.
        return {"b64": base64.b64encode(b).decode("ascii")}


def _map_strings(value, as_b64: bool):
    if isinstance(value, list):
        return [_map_strings(v, as_b64) for v in value]
    return _bytes_to_json(value, as_b64)


def array_to_json(arr: np.ndarray, name: str = ""):
    """A numpy array as JSON-ready values: strings decoded (`*_bytes` as b64),
    numbers left as numpy for `dumps` to write fast."""
    if arr.dtype == object or arr.dtype.kind == "S":
        return _map_strings(arr.tolist(), name.endswith("_bytes"))
    return arr


def all_finite(arrays) -> bool:
    """Whether no float array holds NaN or +-Infinity (the fast writer cannot spell them)."""
    return all(np.isfinite(a).all() for a in arrays if a.dtype.kind in "fc")


def _numpy_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def dumps(obj, fast: bool = True) -> bytes:
    """Compact JSON. With `fast=False` (non-finite floats present) NaN and
    Infinity are written as the literals TF Serving uses."""
    if fast and orjson is not None:
        try:
            return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
        except (TypeError, orjson.JSONEncodeError):
            pass  # e.g. a dtype orjson does not know: the slow path handles everything
    return json.dumps(obj, allow_nan=True, separators=(",", ":"), ensure_ascii=False,
                      default=_numpy_default).encode("utf-8")


def loads(raw: bytes):
    """Parse a request body; NaN/Infinity literals are accepted (TF Serving does)."""
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # NaN/Infinity, or really malformed: json says which
    return json.loads(raw)


def proto_to_array(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """A `TensorProto` as numpy (strings as an object array of bytes).

    Its shape must be a valid tensor shape, as TF Serving's `Tensor::FromProto`
    requires: `MakeNdarray` reads a -5 in `tensor_content` or `string_val`
    tensors as numpy's "infer this dimension"."""
    shape = proto.tensor_shape
    bad = next((i for i, d in enumerate(shape.dim) if d.size < 0), None)
    if shape.unknown_rank or bad is not None:
        what = ("its shape has unknown_rank set" if shape.unknown_rank else
                f"dimension {bad} has size {shape.dim[bad].size}")
        raise InvalidArgument(f"Cannot parse tensor from proto: {_summary(proto)}: {what}; a request "
                              f"tensor has a known shape of sizes >= 0 (-1, 'any size', is only for "
                              f"signatures)")
    try:
        return tensor_util.MakeNdarray(proto)
    except Exception as e:  # malformed content: wrong sizes, unknown dtype...
        raise InvalidArgument(f"Cannot parse tensor from proto: {_summary(proto)}: {e}") from None


def _summary(proto) -> str:
    dtype = (types_pb2.DataType.Name(proto.dtype) if proto.dtype in types_pb2.DataType.values()
             else proto.dtype)
    return f"dtype: {dtype} tensor_shape {{{proto.tensor_shape}}}".replace("\n", " ")


_FIELD = {
    types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val", types_pb2.DT_INT16: "int_val", types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val", types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val", types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val", types_pb2.DT_BOOL: "bool_val", types_pb2.DT_STRING: "string_val",
}


def array_to_proto(arr: np.ndarray, dtype_enum: int | None = None) -> tensor_pb2.TensorProto:
    """A numpy array as a `TensorProto` with typed value fields (`float_val`...),
    as TF Serving's Predict fills responses, so `response.outputs[k].float_val` works."""
    arr = np.asarray(arr)
    if dtype_enum is None:
        dtype_enum = _STRING if arr.dtype == object else tf_dtypes.as_dtype(arr.dtype).as_datatype_enum
    field = _FIELD.get(dtype_enum)
    if field is None:
        return tensor_util.make_tensor_proto(arr, dtype=tf_dtypes.as_dtype(dtype_enum))
    proto = tensor_pb2.TensorProto(
        dtype=dtype_enum,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in arr.shape]))
    flat = arr.ravel()
    if dtype_enum == _STRING:
        getattr(proto, field).extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
    else:
        getattr(proto, field).extend(flat.tolist())
    return proto
