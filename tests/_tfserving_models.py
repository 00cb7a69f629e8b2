"""Test models shaped like TF Serving's own (tensorflow_serving/servables/tensorflow/testdata).

Written here from the spec in TF Serving's `saved_model_half_plus_two.py`
(their files are never copied into this repository): a TF1 graph built with
`SavedModelBuilder`, version directory `00000123`, an asset `foo.txt`, and

    y  = a * x  + b      a = 0.5, b = 2 (half_plus_two) or 3 (half_plus_three)
    y2 = a * x  + c      c = 3
    y3 = a2 * x2 + c2    a2 = 0.5, c2 = 3

where `x` and `x2` are parsed from serialized tf.Examples (`x` float[1],
`x2` float[1] defaulting to 0). So, as in theirs, the predict input `x` is the
parser's output of static shape [-1,1], fed directly: `[1.0, 2.0, 5.0]` gives
`[2.5, 3.0, 4.5]`.

    serving_default   predict   x -> y
    classify_x_to_y   classify  inputs (tf.Example) -> scores (y)
    regress_x_to_y    regress   inputs (tf.Example) -> outputs (y)
    regress_x_to_y2   regress   inputs (tf.Example) -> outputs (y2)
    regress_x2_to_y3  regress   inputs = x2 -> outputs (y3)

>>> build_half_plus_two("/tmp/m/half_plus_two")  # doctest: +SKIP
'/tmp/m/half_plus_two'
"""
from __future__ import annotations

import os
import shutil

import protocol

VERSION_DIR = "00000123"
VERSION = 123


def _export(path: str, b: float) -> None:
    import tensorflow as tf
    v1 = tf.compat.v1
    utils = v1.saved_model.signature_def_utils
    info = v1.saved_model.utils.build_tensor_info

    def sig(inputs, outputs, method):
        return utils.build_signature_def({k: info(v) for k, v in inputs.items()},
                                         {k: info(v) for k, v in outputs.items()}, method)

    with tf.Graph().as_default():
        a = v1.Variable(0.5, name="a")
        bias = v1.Variable(b, name="b")
        c = v1.Variable(3.0, name="c")
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        parsed = v1.parse_example(serialized, {
            "x": v1.FixedLenFeature([1], tf.float32),
            "x2": v1.FixedLenFeature([1], tf.float32, default_value=[0.0])})
        x = tf.identity(parsed["x"], name="x")
        y = tf.identity(a * x + bias, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        x2 = tf.identity(parsed["x2"], name="x2")
        y3 = tf.identity(v1.Variable(0.5, name="a2") * x2 + v1.Variable(3.0, name="c2"), name="y3")
        asset_dir = os.path.join(os.path.dirname(path), "assets-src")
        os.makedirs(asset_dir, exist_ok=True)
        asset = os.path.join(asset_dir, "foo.txt")
        with open(asset, "w") as f:
            f.write("asset-file-contents")
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, tf.constant(asset))
        signatures = {
            protocol.DEFAULT_SIGNATURE: sig({"x": x}, {"y": y}, protocol.PREDICT_METHOD),
            "classify_x_to_y": sig({"inputs": serialized}, {"scores": y}, protocol.CLASSIFY_METHOD),
            "regress_x_to_y": sig({"inputs": serialized}, {"outputs": y}, protocol.REGRESS_METHOD),
            "regress_x_to_y2": sig({"inputs": serialized}, {"outputs": y2}, protocol.REGRESS_METHOD),
            "regress_x2_to_y3": sig({"inputs": x2}, {"outputs": y3}, protocol.REGRESS_METHOD),
        }
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(
                sess, [protocol.SERVE_TAG], signature_def_map=signatures,
                assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS))
            builder.save()
        shutil.rmtree(asset_dir)


def build_half_plus_two(base: str, b: float = 2.0) -> str:
    """`base/00000123/`, a half_plus_two (b=2) or half_plus_three (b=3); returns `base`."""
    base = str(base)
    target = os.path.join(base, VERSION_DIR)
    if not os.path.isdir(target):
        tmp = os.path.join(base, ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(base, exist_ok=True)
        _export(os.path.join(tmp, VERSION_DIR), b)
        os.rename(os.path.join(tmp, VERSION_DIR), target)
        shutil.rmtree(tmp)
    return base
