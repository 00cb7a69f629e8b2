"""The environment TensorFlow and Hugging Face are run with, set in one place.

Every entry point (`python -m server`, `-m export`, `-m bench`, the tests, the
server's child processes) calls `set_defaults()` before TensorFlow or
Transformers is imported; a value the user set is kept.

* `TF_USE_LEGACY_KERAS=1`: Transformers' TF models need Keras 2 (tf-keras).
* `TF_CPP_MIN_LOG_LEVEL=2`: TensorFlow's C++ INFO and WARNING lines off.
* `HF_HUB_OFFLINE=1`: nothing is downloaded at run time; checkpoints are local.

>>> set_defaults({"HF_HUB_OFFLINE": "0"})["HF_HUB_OFFLINE"]
'0'
"""
from __future__ import annotations

import os

__all__ = ["DEFAULTS", "set_defaults"]

DEFAULTS = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "HF_HUB_OFFLINE": "1"}


def set_defaults(environ=None):
    """Set each of `DEFAULTS` in `environ` (default: this process's) unless already set."""
    environ = os.environ if environ is None else environ
    for name, value in DEFAULTS.items():
        environ.setdefault(name, value)
    return environ
