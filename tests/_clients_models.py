"""Test helper for the clients' tests: a tiny SavedModel with classify and regress signatures.

The exported Transformers models only have predict signatures; this one
takes serialized tf.Examples with a float feature "x":
- `serving_default` / `classify`: classes [["neg", "pos"]] and scores [1 - sigmoid(x), sigmoid(x)];
- `regress`: outputs 2 * x + 1.
"""
from __future__ import annotations

from pathlib import Path


def make_examples_model(base: Path) -> Path:
    import tensorflow as tf

    spec = tf.TensorSpec([None], tf.string, name="inputs")

    def parse(serialized):
        return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([], tf.float32)})["x"]

    class Examples(tf.Module):
        @tf.function(input_signature=[spec])
        def classify(self, inputs):
            p = tf.sigmoid(parse(inputs))
            classes = tf.tile(tf.constant([["neg", "pos"]]), [tf.shape(p)[0], 1])
            return {"classes": classes, "scores": tf.stack([1.0 - p, p], axis=1)}

        @tf.function(input_signature=[spec])
        def regress(self, inputs):
            return {"outputs": 2.0 * parse(inputs) + 1.0}

    module = Examples()
    tf.saved_model.save(module, str(base / "1"), signatures={
        "serving_default": module.classify, "classify": module.classify, "regress": module.regress})
    return base
