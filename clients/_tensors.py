"""numpy <-> TF Serving's JSON values and `TensorProto`s, without TensorFlow ops.

Inputs are normalised to numpy arrays: numbers keep (or are cast to) the
signature's dtype, text becomes an object array of `str`, binary an object
array of `bytes`. Over REST `str` goes as a JSON string and `bytes` as
`{"b64": ...}`; over gRPC both go as `string_val` bytes. Outputs of dtype
string are always object arrays of `bytes`, whichever the transport.

>>> import numpy as np
>>> from clients._tensors import to_json_value, from_json_value
>>> to_json_value(as_array(["hi", b"\\x00"]))
['hi', {'b64': 'AA=='}]
>>> from_json_value([[1.5, 2.0]], "float32")
array([[1.5, 2. ]], dtype=float32)
"""
from __future__ import annotations

import base64
import dataclasses
from typing import Any, Iterable

import numpy as np

__all__ = [
    "TensorSpec",
    "as_array",
    "cast_to_spec",
    "to_json_value",
    "from_json_value",
    "array_to_proto",
    "proto_to_array",
    "STRING",
]

STRING = "string"

# TF DataType enum value -> (short name, numpy dtype or None for strings).
_DTYPES: dict[int, tuple[str, Any]] = {
    1: ("float32", np.float32),
    2: ("float64", np.float64),
    3: ("int32", np.int32),
    4: ("uint8", np.uint8),
    5: ("int16", np.int16),
    6: ("int8", np.int8),
    7: (STRING, None),
    8: ("complex64", np.complex64),
    9: ("int64", np.int64),
    10: ("bool", np.bool_),
    14: ("bfloat16", np.float32),  # numpy has no bfloat16: widened on the way in
    17: ("uint16", np.uint16),
    18: ("complex128", np.complex128),
    19: ("float16", np.float16),
    22: ("uint32", np.uint32),
    23: ("uint64", np.uint64),
}
_ENUM_BY_NAME = {name: enum for enum, (name, _) in _DTYPES.items() if name != "bfloat16"}
_TF_NAMES = {"DT_FLOAT": 1, "DT_DOUBLE": 2, "DT_INT32": 3, "DT_UINT8": 4, "DT_INT16": 5, "DT_INT8": 6,
             "DT_STRING": 7, "DT_COMPLEX64": 8, "DT_INT64": 9, "DT_BOOL": 10, "DT_BFLOAT16": 14,
             "DT_UINT16": 17, "DT_COMPLEX128": 18, "DT_HALF": 19, "DT_UINT32": 22, "DT_UINT64": 23}


def dtype_name(tf_dtype: int | str) -> str:
    """'DT_FLOAT' or 1 -> 'float32'; unknown types keep their TF name."""
    enum = _TF_NAMES.get(tf_dtype, tf_dtype) if isinstance(tf_dtype, str) else tf_dtype
    if enum in _DTYPES:
        return _DTYPES[enum][0]
    return str(tf_dtype)


def numpy_dtype(name: str | None):
    """'float32' -> np.float32; 'string' -> object; None/unknown -> None."""
    if name is None:
        return None
    if name == STRING:
        return np.dtype(object)
    for _, (short, np_dtype) in _DTYPES.items():
        if short == name:
            return np.dtype(np_dtype)
    return None


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """dtype ('float32', 'string', ...) and shape (None = any size; shape None = any rank)."""

    dtype: str
    shape: tuple[int | None, ...] | None

    def __repr__(self) -> str:
        return f"TensorSpec(dtype={self.dtype!r}, shape={self.shape!r})"

    def to_dict(self) -> dict:
        return {"dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}


# ---------------------------------------------------------------------------- inputs

def as_array(value: Any) -> np.ndarray:
    """Any array-like (numbers, str, bytes, nested lists) -> numpy array; text stays str."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (str, bytes)):
        arr = np.empty((), dtype=object)
        arr[()] = value
        return arr
    else:
        arr = np.asarray(value) if not _looks_textual(value) else _object_array(value)
    if arr.dtype.kind == "U":
        arr = arr.astype(object)
    elif arr.dtype.kind == "S":
        out = np.empty(arr.shape, dtype=object)
        out.ravel()[:] = [bytes(x) for x in arr.ravel()]
        arr = out
    return arr


def _looks_textual(value: Any) -> bool:
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return isinstance(value, (str, bytes))


def _object_array(nested: Any) -> np.ndarray:
    """Nested lists of str/bytes -> object array (np.asarray would make fixed-width 'U'/'S')."""
    shape = []
    probe = nested
    while isinstance(probe, (list, tuple)):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    arr = np.empty(tuple(shape), dtype=object)
    flat = list(_flatten(nested, len(shape)))
    if len(flat) != arr.size:
        raise ValueError(f"ragged nested list: expected a rectangular shape {tuple(shape)}, "
                         f"got {len(flat)} elements in all; pad rows to the same length")
    if flat:
        arr.ravel()[:] = flat  # ravel of a fresh C array is a view
    return arr


def _flatten(nested: Any, depth: int) -> Iterable[Any]:
    if depth == 0:
        yield nested
        return
    if not isinstance(nested, (list, tuple)):
        raise ValueError(f"ragged nested list: found {type(nested).__name__} where a list was expected")
    for item in nested:
        yield from _flatten(item, depth - 1)


def cast_to_spec(name: str, arr: np.ndarray, spec: TensorSpec | None) -> np.ndarray:
    """Cast `arr` to the signature's dtype (int64 lists -> int32 inputs, ...), or say why not."""
    if spec is None:
        return arr
    want = numpy_dtype(spec.dtype)
    if want is None:
        return arr
    if spec.dtype == STRING:
        if arr.dtype != object or not all(isinstance(x, (str, bytes)) for x in arr.ravel()):
            raise TypeError(f"input {name!r} is a string tensor; got an array of {arr.dtype} "
                            f"(pass str or bytes values)")
        return arr
    if arr.dtype == object:
        raise TypeError(f"input {name!r} is {spec.dtype}; got text or mixed objects "
                        f"(pass numbers, e.g. token ids from a tokenizer)")
    if arr.dtype != want:
        if arr.size and not np.can_cast(arr.dtype, want, casting="same_kind"):
            raise TypeError(f"input {name!r} is {spec.dtype}; got {arr.dtype} values, which would "
                            f"be truncated (convert them yourself if that is intended)")
        arr = arr.astype(want)
    return arr


# ---------------------------------------------------------------------------- JSON

def to_json_value(arr: np.ndarray) -> Any:
    """numpy -> JSON-ready nested lists; bytes become {"b64": ...}, str stays a string."""
    if arr.dtype == object:
        return _map_nested(arr, _json_scalar)
    if arr.dtype.kind == "c":
        raise TypeError("complex tensors cannot be sent over REST; use the gRPC client")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    return arr.tolist()


def _json_scalar(x: Any) -> Any:
    if isinstance(x, bytes):
        return {"b64": base64.b64encode(x).decode("ascii")}
    if isinstance(x, str):
        return x
    if isinstance(x, np.generic):
        return x.item()
    return x


def _map_nested(arr: np.ndarray, fn) -> Any:
    if arr.ndim == 0:
        return fn(arr[()])
    if arr.ndim == 1:
        return [fn(x) for x in arr]
    return [_map_nested(sub, fn) for sub in arr]


def from_json_value(value: Any, dtype: str | None) -> np.ndarray:
    """A JSON value from TF Serving -> numpy with the declared dtype (strings -> bytes)."""
    if dtype == STRING or (dtype is None and _looks_stringy(value)):
        return _string_array(value)
    np_dtype = numpy_dtype(dtype)
    try:
        return np.asarray(value, dtype=np_dtype)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot read a {dtype or 'numeric'} tensor from the JSON value "
                         f"{_preview(value)}: {exc}") from exc


def _looks_stringy(value: Any) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, (str, dict))


def _string_array(value: Any) -> np.ndarray:
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    out = np.empty(tuple(shape), dtype=object)
    flat = [_bytes_of(x) for x in _flatten(value, len(shape))]
    if len(flat) != out.size:
        raise ValueError(f"ragged string tensor in the response: {_preview(value)}")
    if flat:
        out.ravel()[:] = flat
    return out


def _bytes_of(x: Any) -> bytes:
    if isinstance(x, dict) and "b64" in x:
        return base64.b64decode(x["b64"])
    if isinstance(x, str):
        return x.encode("utf-8")
    raise ValueError(f"expected a string or {{'b64': ...}} in a string tensor, got {_preview(x)}")


def _preview(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------- TensorProto

def array_to_proto(arr: np.ndarray, proto):
    """Fill the empty `tensorflow.TensorProto` `proto` from numpy (numbers as little-endian
    `tensor_content`, text as `string_val`) and return it."""
    for size in arr.shape:
        proto.tensor_shape.dim.add().size = int(size)
    if arr.dtype == object:
        proto.dtype = 7
        proto.string_val.extend(x.encode("utf-8") if isinstance(x, str) else bytes(x)
                                for x in arr.ravel())
        return proto
    enum = _ENUM_BY_NAME.get(np.dtype(arr.dtype).name if arr.dtype != np.bool_ else "bool")
    if enum is None:
        raise TypeError(f"cannot send numpy dtype {arr.dtype} to TF Serving; cast to one of "
                        f"{sorted(_ENUM_BY_NAME)}")
    proto.dtype = enum
    proto.tensor_content = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    return proto


_VAL_FIELDS = {1: "float_val", 2: "double_val", 3: "int_val", 4: "int_val", 5: "int_val", 6: "int_val",
               9: "int64_val", 10: "bool_val", 17: "int_val", 19: "half_val", 14: "half_val",
               22: "uint32_val", 23: "uint64_val", 8: "scomplex_val", 18: "dcomplex_val"}


def proto_to_array(proto) -> np.ndarray:
    """`TensorProto` -> numpy, reading `tensor_content` or the typed `*_val` fields."""
    if proto.tensor_shape.unknown_rank:
        raise ValueError("tensor of unknown rank in the response")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    size = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == 7:
        flat = np.empty(len(proto.string_val), dtype=object)
        flat[:] = list(proto.string_val)
        return _fill(flat, shape, size, object)
    if proto.dtype not in _DTYPES:
        raise ValueError(f"unsupported dtype enum {proto.dtype} in the response")
    np_dtype = np.dtype(_DTYPES[proto.dtype][1])
    if proto.dtype == 14:  # bfloat16: the high 16 bits of a float32
        if proto.tensor_content:
            bits = np.frombuffer(proto.tensor_content, dtype="<u2")
        else:
            bits = np.asarray(proto.half_val, dtype=np.uint32).astype(np.uint16)
        flat = (bits.astype(np.uint32) << 16).view(np.float32)
        return _fill(flat, shape, size, np.float32)
    if proto.tensor_content:
        flat = np.frombuffer(proto.tensor_content, dtype=np_dtype.newbyteorder("<")).astype(np_dtype)
        return flat.reshape(shape)
    field = _VAL_FIELDS[proto.dtype]
    raw = getattr(proto, field)
    if proto.dtype == 19:
        flat = np.asarray(raw, dtype=np.uint16).view(np.float16)
    elif proto.dtype in (8, 18):
        pairs = np.asarray(raw, dtype=np.float32 if proto.dtype == 8 else np.float64)
        flat = (pairs[0::2] + 1j * pairs[1::2]).astype(np_dtype)
    else:
        flat = np.asarray(raw, dtype=np_dtype)
    return _fill(flat, shape, size, np_dtype)


def _fill(flat: np.ndarray, shape: tuple, size: int, dtype) -> np.ndarray:
    """TF's convention: fewer values than elements repeat the last one (none: zeros)."""
    if flat.size == size:
        return flat.reshape(shape)
    if flat.size == 0:
        return np.full(shape, b"" if dtype is object else 0, dtype=dtype)
    if flat.size > size:
        raise ValueError(f"tensor has {flat.size} values for shape {shape}")
    out = np.empty(size, dtype=dtype)
    out[:flat.size] = flat
    out[flat.size:] = flat[-1]
    return out.reshape(shape)
