"""One helper that checks a signature the way TF Serving will use it.

`check_signature(saved_model_dir, name, inputs)` calls the signature on the
reloaded SavedModel with the whole batch and with each row alone, and asserts
the batched rows equal the single rows (padding must not leak into results).
Returns the batched outputs as numpy arrays. `call(saved_model_dir, name, inputs)` calls it once;
`assert_same_outputs(got, expected)` asserts a server returned exactly what the in-process call gives;
`same_rows(got, want)` compares decoded entities or answers, scores within 1e-5.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

_LOADED: dict[str, object] = {}

# Outputs whose shape depends on the padded length of the batch.
_PADDED = ("last_hidden_state", "hidden_states", "attentions")


def load(path: Path):
    key = str(path)
    if key not in _LOADED:
        _LOADED[key] = tf.saved_model.load(key)
    return _LOADED[key]


def call(path: Path, name: str, inputs: dict) -> dict[str, np.ndarray]:
    fn = load(path).signatures[name]
    specs = fn.structured_input_signature[1]
    feed = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}
    return {k: v.numpy() for k, v in fn(**feed).items()}


def check_signature(path: Path, name: str, inputs: dict, atol: float = 1e-5) -> dict[str, np.ndarray]:
    batched = call(path, name, inputs)
    n = len(next(iter(inputs.values())))
    for out in batched.values():
        assert out.shape[0] == n, f"{name}: output batch {out.shape[0]} != input batch {n}"
    for i in range(n):
        single = call(path, name, {k: np.asarray(v)[i:i + 1] for k, v in inputs.items()})
        for key, value in single.items():
            if key in _PADDED:
                continue
            if value.dtype.kind in "SUO":
                assert (batched[key][i:i + 1] == value).all(), f"{name}.{key} row {i} differs when batched"
            else:
                np.testing.assert_allclose(batched[key][i:i + 1], value, atol=atol,
                                           err_msg=f"{name}.{key} row {i} differs when batched")
    return batched


def assert_same_outputs(got: dict, expected: dict[str, np.ndarray]) -> None:
    """The same output names, dtypes and values, to the bit."""
    assert set(got) == set(expected)
    for name, want in expected.items():
        assert got[name].dtype == want.dtype, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def same_rows(got: list, want: list) -> bool:
    """Decoded entities / answers equal, scores within 1e-5."""
    def flat(rows):
        items = [item for row in rows for item in (row if isinstance(row, list) else [row])]
        return [{k: v for k, v in item.items() if k != "score"} for item in items], [i["score"] for i in items]

    (g, g_scores), (w, w_scores) = flat(got), flat(want)
    return len(got) == len(want) and g == w and np.allclose(g_scores, w_scores, atol=1e-5)
