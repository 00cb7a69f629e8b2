"""Which versions of a model exist on disk, and which of them its policy wants.

TF Serving's file system source lists the numeric subdirectories of a
model's `base_path` (the number is read from the name, so `00000123` is
version 123) and its `model_version_policy` picks the aspired ones:
`latest {num_versions}` (default latest 1), `all {}`, `specific {versions}`.

>>> from tensorflow_serving.config import model_server_config_pb2
>>> aspired_versions(model_server_config_pb2.ModelConfig(), [1, 2, 3])
[3]
"""
from __future__ import annotations

import os

__all__ = ["list_versions", "aspired_versions"]


def list_versions(base_path: str) -> dict[int, str] | None:
    """{version: directory path} of the numeric subdirectories of `base_path`
    (None when it cannot be listed). The path is the one found on disk: a
    version may be spelled `00000123`, and is never rebuilt from the number."""
    try:
        names = sorted(os.listdir(base_path))
    except OSError:
        return None
    found: dict[int, str] = {}
    for n in names:
        path = os.path.join(base_path, n)
        if n.isascii() and n.isdigit() and os.path.isdir(path):
            found.setdefault(int(n), path)
    return found


def aspired_versions(config, on_disk: list[int]) -> list[int]:
    """The versions the model's `model_version_policy` wants, of those on disk."""
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return list(on_disk)
    if kind == "specific":
        wanted = set(policy.specific.versions)
        return [v for v in on_disk if v in wanted]
    n = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions > 0 else 1
    return sorted(on_disk)[-n:]
