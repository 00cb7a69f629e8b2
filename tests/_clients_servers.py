"""Test helper for the clients' tests: serve several models from one `python -m server`."""
from __future__ import annotations

from pathlib import Path


def model_config(models: dict[str, Path], path: Path, labels: dict[str, dict[str, int]] | None = None) -> Path:
    """Write a ModelServerConfig text proto serving `models` ({name: base path}) to `path`,
    with version labels `labels` ({name: {label: version}})."""
    labels = labels or {}
    entries = "".join(
        f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow"'
        + "".join(f' version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.get(name, {}).items())
        + " }\n"
        for name, base in models.items())
    path.write_text("model_config_list {\n" + entries + "}\n")
    return path
