"""Predict, Classify and Regress semantics on one loaded servable, after TF
Serving's `predict_util.cc`, `classifier.cc` and `regressor.cc`: which
signature, which inputs and outputs, the checks and their error texts, and
how results are shaped.

The `servable` argument is anything with `.signature_defs` (name ->
`SignatureDef`) and `.run(feeds, fetches, timeout)` (see `_servable.Servable`).

>>> sorted_set(["b", "a"])
'{a,b}'
"""
from __future__ import annotations

import numpy as np
from tensorflow.core.framework import types_pb2

import protocol

from ._errors import FailedPrecondition, InvalidArgument, ServingError
from ._tensors import dtype_name, numpy_dtype

__all__ = ["predict_signature", "check_inputs", "predict", "classify", "regress",
           "serialized_examples", "sorted_set", "shape_text", "shape_mismatches"]

CLASSIFY_INPUTS, CLASSIFY_CLASSES, CLASSIFY_SCORES = "inputs", "classes", "scores"
REGRESS_INPUTS, REGRESS_OUTPUTS = "inputs", "outputs"


def sorted_set(names) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def shape_text(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def predict_signature(servable, signature_name: str):
    """The SignatureDef a Predict names (default `serving_default`)."""
    name = signature_name or protocol.DEFAULT_SIGNATURE
    sig = servable.signature_defs.get(name)
    if sig is None:
        raise FailedPrecondition(f'Serving signature key "{name}" not found.')
    return sig


def _named_signature(servable, signature_name: str, method: str, kind: str, check_method: bool):
    name = signature_name or protocol.DEFAULT_SIGNATURE
    sig = servable.signature_defs.get(name)
    if sig is None:
        raise InvalidArgument(f"No signature was found with the name: {name}")
    if check_method and sig.method_name != method:
        raise InvalidArgument(f"Expected {kind} signature method_name to be {method}. "
                              f"Was: {sig.method_name}")
    return sig


def check_inputs(sig, aliases) -> None:
    """TF Serving's checks of request input aliases against the signature."""
    aliases = list(aliases)
    expected = set(sig.inputs.keys())
    if len(aliases) != len(expected):
        sent = set(aliases)
        raise InvalidArgument(
            f"input size does not match signature: {len(aliases)}!={len(expected)} "
            f"len({sorted_set(sent)}) != len({sorted_set(expected)}). "
            f"Sent extra: {sorted_set(sent - expected)}. "
            f"Missing but required: {sorted_set(expected - sent)}.")
    for alias in aliases:
        if alias not in expected:
            raise InvalidArgument(f"input tensor alias not found in signature: {alias}. "
                                  f"Inputs expected to be in the set {sorted_set(expected)}.")


def _check_dtype(index: int, alias: str, info, arr: np.ndarray) -> None:
    want = numpy_dtype(info.dtype)
    if arr.dtype != want and not (want == object and arr.dtype.kind == "S"):
        raise InvalidArgument(f"Expects arg[{index}] to be {dtype_name(info.dtype)} but "
                              f"{dtype_name(arr.dtype)} is provided (input '{alias}')")


def shape_mismatches(sig, inputs: dict) -> list[str]:
    """Inputs whose shape differs from the SignatureDef's, as hints.

    Only hints: TF Serving leaves shape compatibility to the graph (its
    half_plus_two answers `x` of shape `[3]` though the signature says
    `[-1,1]`), so these are added to the graph's own error, never raised alone.
    """
    hints = []
    for alias, arr in sorted(inputs.items()):
        shape = sig.inputs[alias].tensor_shape
        if shape.unknown_rank:
            continue
        dims = [d.size for d in shape.dim]
        if len(dims) != arr.ndim or any(d >= 0 and d != s for d, s in zip(dims, arr.shape)):
            hints.append(f"input '{alias}' has shape {shape_text(arr.shape)} but the signature "
                         f"expects {shape_text(dims)} (-1: any size)")
    return hints


def predict(servable, signature_name: str, inputs: dict, output_filter=(), timeout=None):
    """Run a Predict; returns (signature name used, {output alias: array})."""
    name = signature_name or protocol.DEFAULT_SIGNATURE
    sig = predict_signature(servable, name)
    check_inputs(sig, inputs.keys())
    aliases = sorted(inputs)
    feeds = {}
    order = sorted(sig.inputs)
    for alias in aliases:
        info = sig.inputs[alias]
        arr = inputs[alias]
        _check_dtype(order.index(alias), alias, info, arr)
        feeds[info.name] = arr
    if output_filter:
        seen = set()
        for alias in output_filter:
            if alias not in sig.outputs:
                raise InvalidArgument(f"output tensor alias not found in signature: {alias} Outputs "
                                      f"expected to be in the set {sorted_set(sig.outputs)}.")
            if alias in seen:
                raise InvalidArgument(f"duplicate output tensor alias: {alias}")
            seen.add(alias)
        out_aliases = list(output_filter)
    else:
        out_aliases = sorted(sig.outputs)
    try:
        values = servable.run(feeds, [sig.outputs[a].name for a in out_aliases], timeout)
    except ServingError as e:
        hints = shape_mismatches(sig, inputs) if e.code == InvalidArgument.code else []
        if not hints:
            raise
        raise InvalidArgument(f"{e.message.rstrip()}; {'; '.join(hints)}") from None
    return name, dict(zip(out_aliases, values))


def serialized_examples(input_proto) -> list[bytes]:
    """An `Input` proto as serialized tf.Examples; context features are merged
    into each example the way TF Serving does (concatenating serializations)."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        out = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        ctx = input_proto.example_list_with_context.context.SerializeToString()
        out = [ctx + e.SerializeToString() for e in input_proto.example_list_with_context.examples]
    else:
        out = []
    if not out:
        raise InvalidArgument("Input is empty.")
    return out


def _single_input(sig, kind: str):
    if len(sig.inputs) != 1:
        raise InvalidArgument(f"Expected one input Tensor (a {kind} signature takes the serialized "
                              f"tf.Examples), got {sorted_set(sig.inputs)}.")
    info = next(iter(sig.inputs.values()))
    if info.dtype != types_pb2.DT_STRING:
        raise InvalidArgument(f"Expected the {kind} input Tensor to be DT_STRING (serialized "
                              f"tf.Examples), got {types_pb2.DataType.Name(info.dtype)}.")
    return info


def classify(servable, signature_name: str, examples: list[bytes], timeout=None, check_method=False):
    """Run a Classify; returns (signature name, [[(label or None, score or None), ...] per example])."""
    name = signature_name or protocol.DEFAULT_SIGNATURE
    sig = _named_signature(servable, name, protocol.CLASSIFY_METHOD, "classification", check_method)
    info = _single_input(sig, "classification")
    classes_info = sig.outputs.get(CLASSIFY_CLASSES)
    scores_info = sig.outputs.get(CLASSIFY_SCORES)
    if classes_info is None and scores_info is None:
        raise InvalidArgument(f"Expected classification signature outputs to contain at least one of "
                              f"\"{CLASSIFY_CLASSES}\" or \"{CLASSIFY_SCORES}\"; got "
                              f"{sorted_set(sig.outputs)}.")
    if classes_info is not None and classes_info.dtype != types_pb2.DT_STRING:
        raise InvalidArgument(f"Expected classes Tensor of DT_STRING. Got: "
                              f"{types_pb2.DataType.Name(classes_info.dtype)}")
    if scores_info is not None and scores_info.dtype != types_pb2.DT_FLOAT:
        raise InvalidArgument(f"Expected scores Tensor of DT_FLOAT. Got: "
                              f"{types_pb2.DataType.Name(scores_info.dtype)}")
    batch = np.empty(len(examples), dtype=object)
    batch[:] = examples
    fetch = [i.name for i in (classes_info, scores_info) if i is not None]
    values = servable.run({info.name: batch}, fetch, timeout)
    classes = values.pop(0) if classes_info is not None else None
    scores = values.pop(0) if scores_info is not None else None
    n = len(examples)
    for label, t in (("classes", classes), ("scores", scores)):
        if t is None:
            continue
        if t.ndim != 2:
            raise InvalidArgument(f"Expected Tensor shape: [batch_size num_classes] but got "
                                  f"{shape_text(t.shape)} for {label}")
        if t.shape[0] != n:
            raise InvalidArgument(f"Expected {label} output batch size of {n}. Got {t.shape[0]}")
    if classes is not None and scores is not None and classes.shape != scores.shape:
        raise InvalidArgument(f"Tensors class and score should match in shape: "
                              f"{shape_text(classes.shape)} vs. {shape_text(scores.shape)}")
    width = (classes if classes is not None else scores).shape[1]
    result = []
    for i in range(n):
        row = []
        for j in range(width):
            label = classes[i, j] if classes is not None else None
            if isinstance(label, bytes):
                label = label.decode("utf-8", "replace")
            row.append((label, float(scores[i, j]) if scores is not None else None))
        result.append(row)
    return name, result


def regress(servable, signature_name: str, examples: list[bytes], timeout=None, check_method=False):
    """Run a Regress; returns (signature name, [value per example])."""
    name = signature_name or protocol.DEFAULT_SIGNATURE
    sig = _named_signature(servable, name, protocol.REGRESS_METHOD, "regression", check_method)
    info = _single_input(sig, "regression")
    if len(sig.outputs) != 1:
        raise InvalidArgument(f"Expected one output Tensor, got {sorted_set(sig.outputs)}.")
    out_info = sig.outputs.get(REGRESS_OUTPUTS)
    if out_info is None:
        raise InvalidArgument(f"No regression outputs found: expected an output named "
                              f"\"{REGRESS_OUTPUTS}\", got {sorted_set(sig.outputs)}.")
    if out_info.dtype != types_pb2.DT_FLOAT:
        raise InvalidArgument(f"Expected output Tensor of DT_FLOAT. Got: "
                              f"{types_pb2.DataType.Name(out_info.dtype)}")
    batch = np.empty(len(examples), dtype=object)
    batch[:] = examples
    (out,) = servable.run({info.name: batch}, [out_info.name], timeout)
    if not (out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1)):
        raise InvalidArgument(f"Expected output Tensor shape to be either [batch_size] or "
                              f"[batch_size, 1] but got {shape_text(out.shape)}")
    if out.shape[0] != len(examples):
        raise InvalidArgument(f"Input batch size did not match output batch size: "
                              f"{len(examples)} vs. {out.shape[0]}")
    return name, [float(v) for v in out.reshape(-1)]
