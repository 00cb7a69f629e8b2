"""Small SavedModels the server tests serve: TF Serving's half_plus_two, extended.

`build_models(base)` writes (the `server_models` fixture, once per test run):

    base/hpt/1, base/hpt/2   y = 0.5 * x + b, with b = 2 (version 1) and 3 (version 2)
    base/warm/1              hpt/1 plus assets.extra/tf_serving_warmup_requests (3 x "count")
    base/badwarm/1           hpt/1 with a warmup record naming a missing signature

Signatures of every version (TF1 graph, built with SavedModelBuilder like
TF Serving's saved_model_half_plus_two.py, so classify/regress have their
method names):

    serving_default  predict   x float[-1]                      -> y float[-1]
    mixed            predict   x float[-1], n int32[-1], s string[-1]
                               -> y, n2 = 2n int32, s_out = s, s_bytes = s string
    matrix           predict   m float[-1,2]                    -> msum float[-1]
    ragged           predict   v float[-1,-1]                   -> width int32[-1] (v's 2nd dim in the run), v_out
    probe            predict   x float[-1]                      -> batch_size int32[-1] (rows in the run), y
    count            predict   x float[-1]                      -> count int64[-1] (runs so far, incl. this one)
    classify_x_to_y  classify  inputs: tf.Example{x: float[1]}  -> classes string[-1,1] ("y"), scores float[-1,1]
    regress_x_to_y   regress   inputs: tf.Example{x: float[1]}  -> outputs float[-1,1]
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import protocol
from tests._model_configs import config_entry, model_config_text


def _build_version(path: str, b: float) -> None:
    import tensorflow as tf
    v1 = tf.compat.v1
    sd = v1.saved_model.signature_def_utils
    info = v1.saved_model.utils.build_tensor_info
    with tf.Graph().as_default():
        a = v1.Variable(0.5, name="a")
        bias = v1.Variable(b, name="b")
        counter = v1.Variable(0, dtype=tf.int64, name="counter")
        x = v1.placeholder(tf.float32, [None], name="x")
        y = tf.add(a * x, bias, name="y")
        n = v1.placeholder(tf.int32, [None], name="n")
        s = v1.placeholder(tf.string, [None], name="s")
        m = v1.placeholder(tf.float32, [None, 2], name="m")
        v = v1.placeholder(tf.float32, [None, None], name="v")
        rows = tf.shape(x)[0]
        batch_size = tf.fill([rows], rows, name="batch_size")
        count = tf.fill([rows], counter.assign_add(1), name="count")
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        xe = v1.parse_example(serialized, {"x": v1.FixedLenFeature([1], tf.float32)})["x"]
        ye = tf.add(a * xe, bias, name="ye")
        classes = tf.fill(tf.shape(ye), "y")
        sigs = {
            "serving_default": sd.predict_signature_def({"x": x}, {"y": y}),
            "mixed": sd.predict_signature_def({"x": x, "n": n, "s": s},
                                              {"y": y, "n2": n * 2, "s_out": tf.identity(s),
                                               "s_bytes": tf.identity(s)}),
            "matrix": sd.predict_signature_def({"m": m}, {"msum": tf.reduce_sum(m, axis=1)}),
            "ragged": sd.predict_signature_def({"v": v}, {"width": tf.fill([tf.shape(v)[0]], tf.shape(v)[1]),
                                                          "v_out": tf.identity(v)}),
            "probe": sd.predict_signature_def({"x": x}, {"batch_size": batch_size, "y": y}),
            "count": sd.predict_signature_def({"x": x}, {"count": count}),
            "classify_x_to_y": v1.saved_model.signature_def_utils.build_signature_def(
                {"inputs": info(serialized)}, {"classes": info(classes), "scores": info(ye)},
                protocol.CLASSIFY_METHOD),
            "regress_x_to_y": v1.saved_model.signature_def_utils.build_signature_def(
                {"inputs": info(serialized)}, {"outputs": info(ye)}, protocol.REGRESS_METHOD),
        }
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(sess, [protocol.SERVE_TAG], signature_def_map=sigs)
            builder.save()


def write_warmup(version_dir: str, signature: str, records: int) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    path = os.path.join(version_dir, protocol.WARMUP_DIR)
    os.makedirs(path, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(path, protocol.WARMUP_FILE)) as w:
        for _ in range(records):
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "ignored"
            req.model_spec.signature_name = signature
            req.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0], tf.float32))
            w.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString())


def build_version(dest: str, b: float) -> str:
    """One hpt version directory at `dest` (for tests that add versions while serving)."""
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    _build_version(tmp, b)
    os.rename(tmp, dest)  # appears at once, complete, like a real export should
    return dest


def build_models(base) -> str:
    """Build the test models under `base` (a str or Path); the `server_models` fixture does it once per run."""
    base = str(base)
    os.makedirs(base, exist_ok=True)
    for version, b in ((1, 2.0), (2, 3.0)):
        build_version(os.path.join(base, "hpt", str(version)), b)
    shutil.copytree(os.path.join(base, "hpt", "1"), os.path.join(base, "warm", "1"))
    write_warmup(os.path.join(base, "warm", "1"), "count", 3)
    shutil.copytree(os.path.join(base, "hpt", "1"), os.path.join(base, "badwarm", "1"))
    write_warmup(os.path.join(base, "badwarm", "1"), "no_such_signature", 1)
    return base


@contextlib.contextmanager
def hpt_server(base: str, config_dir, *flags: str, models=("hpt", "warm")):
    """`python -m server` over hpt (every version, labels stable=1 canary=2) and warm, from a config file
    written into `config_dir`; `flags` are added to the command line."""
    from server import ServerProcess

    config = Path(config_dir) / "models.config"
    config.write_text(model_config_text(
        config_entry("hpt", f"{base}/hpt", policy="all {}", labels={"stable": 1, "canary": 2}),
        config_entry("warm", f"{base}/warm")))
    with ServerProcess([f"--model_config_file={config}", "--max_num_load_retries=0",
                        "--file_system_poll_wait_seconds=0", *flags], models=list(models)) as srv:
        yield srv
