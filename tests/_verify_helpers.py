"""Helpers for the export verification tests: a weight-perturbing seam and small SavedModels.

- `perturb_encoder_layer(monkeypatch, index)`: wraps `export._exporter.load_tf_model`
  so the TF model, after conversion from PyTorch, gets noise in one encoder
  layer's weights (0-based `index`, as in `encoder.layer.{index}`).
- `save_function_model(path, fn)`: a SavedModel whose serving_default is `fn`
  over a [batch] string input, to check the op check on ops our exports
  never use.
"""
from __future__ import annotations

from pathlib import Path


def perturb_encoder_layer(monkeypatch, index: int, scale: float = 0.05) -> None:
    import tensorflow as tf

    import export._exporter as exporter

    original = exporter.load_tf_model

    def noisy(checkpoint, task):
        model = original(checkpoint, task)
        main = getattr(model, model.base_model_prefix)  # TFBertModel.bert, TFBertFor*.bert
        kernel = main.encoder.layer[index].intermediate.dense.kernel
        kernel.assign(kernel + scale * tf.random.stateless_normal(kernel.shape, seed=(1, 2)))
        return model

    monkeypatch.setattr(exporter, "load_tf_model", noisy)


def save_function_model(path: Path, fn) -> Path:
    import tensorflow as tf

    module = tf.Module()
    module.serve = tf.function(fn, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path
