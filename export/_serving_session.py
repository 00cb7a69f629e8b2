"""A SavedModel loaded the way TF Serving loads it: the `serve` meta graph in a Session.

Loaded with the server's own loader (`server.load_saved_model`), so the
export checks the artifact through the path serving will take (this is also
faster than `tf.saved_model.load`, which rebuilds Python functions).

>>> session = ServingSession.load("models/minilm/1")
>>> session.run("text", {"text": np.array([b"hello"], dtype=object)})["embedding"].shape
(1, 384)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from server import load_saved_model

__all__ = ["ServingSession"]


class ServingSession:
    def __init__(self, session, signature_defs: dict):
        self.session = session
        self.signature_defs = {k: v for k, v in signature_defs.items() if not k.startswith("__")}

    @classmethod
    def load(cls, path: str | Path) -> "ServingSession":
        loaded = load_saved_model(path)
        return cls(loaded.session, loaded.signature_defs)

    @property
    def names(self) -> list[str]:
        return sorted(self.signature_defs)

    def input_dtypes(self, name: str) -> dict[str, np.dtype]:
        """Signature input name -> numpy dtype (object for strings)."""
        import tensorflow as tf

        return {k: tf.dtypes.as_dtype(v.dtype).as_numpy_dtype for k, v in self.signature_defs[name].inputs.items()}

    def run(self, name: str, inputs: dict) -> dict[str, np.ndarray]:
        """Call signature `name` with {input name: array}; KeyError for an unknown signature or input."""
        signature = self.signature_defs[name]
        unknown = set(inputs) - set(signature.inputs)
        missing = set(signature.inputs) - set(inputs)
        if unknown or missing:
            raise KeyError(f"signature {name!r} takes {sorted(signature.inputs)}, got {sorted(inputs)}")
        dtypes = self.input_dtypes(name)
        feeds = {signature.inputs[k].name: np.asarray(v, dtype=dtypes[k]) for k, v in inputs.items()}
        fetches = {k: v.name for k, v in signature.outputs.items()}
        return self.session.run(fetches, feeds)

    def close(self) -> None:
        self.session.close()
